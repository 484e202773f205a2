#include "neuroflux/distributed/launch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "neuroflux/util/errors.h"

namespace neuroflux {

namespace {

std::optional<int> env_int(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  char* end = nullptr;
  const long v = std::strtol(value, &end, 10);
  if (*end != '\0' || v < 0 || v > 1 << 20)
    throw ConfigError(std::string("environment ") + name + "=" + value +
                      ": expected a non-negative integer");
  return static_cast<int>(v);
}

}  // namespace

DistributedOptions resolve_distributed(std::optional<int> rank, std::optional<int> world_size,
                                       std::optional<std::string> master) {
  DistributedOptions o;
  const bool from_cli = rank || world_size || master;
  if (from_cli) {
    if (!rank || !world_size || !master)
      throw ConfigError("--rank, --world-size and --master HOST:PORT go together");
    o.rank = *rank;
    o.world_size = *world_size;
    const auto colon = master->rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == master->size())
      throw ConfigError("--master " + *master + ": expected HOST:PORT");
    o.master_addr = master->substr(0, colon);
    try {
      o.master_port = std::stoi(master->substr(colon + 1));
    } catch (const std::exception&) {
      throw ConfigError("--master " + *master + ": the port is not a number");
    }
    // Machines may hold several ranks each; without LOCAL_* each rank counts as alone.
    o.local_rank = env_int("LOCAL_RANK").value_or(0);
    o.local_world_size = env_int("LOCAL_WORLD_SIZE").value_or(1);
  } else {
    o.world_size = env_int("WORLD_SIZE").value_or(1);
    o.rank = env_int("RANK").value_or(0);
    o.local_rank = env_int("LOCAL_RANK").value_or(o.rank);
    o.local_world_size = env_int("LOCAL_WORLD_SIZE").value_or(o.world_size);
    if (const char* addr = std::getenv("MASTER_ADDR")) o.master_addr = addr;
    o.master_port = env_int("MASTER_PORT").value_or(o.master_port);
  }
  const std::string where = from_cli ? "--rank" : "environment RANK";
  if (o.world_size < 1) throw ConfigError((from_cli ? "--world-size" : "environment WORLD_SIZE") +
                                          std::string(": expected at least 1"));
  if (o.rank >= o.world_size)
    throw ConfigError(where + " " + std::to_string(o.rank) + ": must be below the world size " +
                      std::to_string(o.world_size));
  if (o.master_port <= 0 || o.master_port > 65535)
    throw ConfigError("master port " + std::to_string(o.master_port) + ": expected 1-65535");
  if (o.local_world_size < 1) o.local_world_size = 1;
  return o;
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error("cannot open a socket to find a free port");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw Error("cannot bind a socket on 127.0.0.1 to find a free port");
  }
  const int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

int launch_local_ranks(int nproc, const std::vector<std::string>& args, double grace_seconds) {
  if (nproc < 1) throw ConfigError("--nproc: expected at least 1, got " + std::to_string(nproc));
  const int port = free_port();
  std::vector<pid_t> pids;
  for (int r = 0; r < nproc; ++r) {
    const pid_t pid = ::fork();
    if (pid < 0) throw Error("--nproc: cannot start rank " + std::to_string(r));
    if (pid == 0) {
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      std::vector<std::string> words{"neuroflux"};
      words.insert(words.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& w : words) argv.push_back(w.data());
      argv.push_back(nullptr);
      ::execv("/proc/self/exe", argv.data());
      std::perror("neuroflux: --nproc: exec");
      ::_exit(1);
    }
    pids.push_back(pid);
  }
  std::fprintf(stderr, "neuroflux: started %d ranks on 127.0.0.1:%d (pids", nproc, port);
  for (pid_t pid : pids) std::fprintf(stderr, " %d", static_cast<int>(pid));
  std::fprintf(stderr, ")\n");

  int result = 0, running = nproc;
  std::optional<std::chrono::steady_clock::time_point> deadline;
  while (running > 0) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, deadline ? WNOHANG : 0);
    if (pid > 0) {
      --running;
      int rank = 0;
      while (rank < nproc && pids[rank] != pid) ++rank;
      const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
      if (code != 0) {
        if (WIFSIGNALED(status))
          std::fprintf(stderr, "neuroflux: rank %d was killed by signal %d\n", rank,
                       WTERMSIG(status));
        if (result == 0) {
          result = code;
          deadline = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(static_cast<int64_t>(grace_seconds * 1000));
        }
      }
      if (rank < nproc) pids[rank] = -1;
      continue;
    }
    if (deadline && std::chrono::steady_clock::now() > *deadline) {
      for (int r = 0; r < nproc; ++r) {
        if (pids[r] <= 0) continue;
        std::fprintf(stderr, "neuroflux: rank %d still running after a rank failed; killing it\n",
                     r);
        ::kill(pids[r], SIGKILL);
      }
      deadline.reset();  // block in waitpid for the killed ones
      continue;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return result;
}

}  // namespace neuroflux
