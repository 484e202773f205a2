#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <utility>

#include "neuroflux/util/errors.h"
#include "neuroflux/util/atomic_file.h"

TEST_CASE("an atomic write that fails leaves the old file", "[util][unit]") {
  const std::string path = "/tmp/neuroflux-atomic-test.txt";
  neuroflux::write_file_atomic(path, "old");
  CHECK_THROWS(neuroflux::write_atomic_with(path, [](const std::string& temp) {
    neuroflux::write_file_atomic(temp, "half");
    throw std::runtime_error("killed");
  }));
  CHECK(neuroflux::read_file(path) == "old");
  std::filesystem::remove(path);
}

namespace {

/// Runs `write` under a 4 KiB file size limit, a stand-in for a full disk: write() fails with
/// EFBIG past it (the signal that would otherwise end the process is ignored meanwhile). Returns
/// the exit code and message of the error it ended with.
std::pair<neuroflux::ExitCode, std::string> fail_past_limit(const std::function<void()>& write) {
  rlimit before{};
  REQUIRE(getrlimit(RLIMIT_FSIZE, &before) == 0);
  auto* previous_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = before;
  small.rlim_cur = 4096;
  REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
  std::pair<neuroflux::ExitCode, std::string> result{neuroflux::ExitCode::kOk, ""};
  try {
    write();
  } catch (const neuroflux::Error& e) {
    result = {e.code(), e.what()};
  }
  setrlimit(RLIMIT_FSIZE, &before);
  std::signal(SIGXFSZ, previous_handler);
  return result;
}

/// The failed write named `path` and the system's reason, left the old file and no temporary.
void check_kept(const std::string& path, const std::pair<neuroflux::ExitCode, std::string>& error) {
  CHECK(error.first == neuroflux::ExitCode::kBadData);
  CHECK(error.second.find(path) != std::string::npos);
  CHECK(error.second.find("too large") != std::string::npos);  // strerror(EFBIG): "File too large"
  CHECK(neuroflux::read_file(path) == "old");
  for (const auto& entry : std::filesystem::directory_iterator("/tmp"))
    CHECK(entry.path().string().rfind(path + ".tmp", 0) == std::string::npos);
}

}  // namespace

TEST_CASE("a write that runs out of space names the file and keeps the old one",
          "[util][unit]") {
  const std::string path = "/tmp/neuroflux-full-disk-test.txt";
  neuroflux::write_file_atomic(path, "old");
  check_kept(path, fail_past_limit(
                       [&] { neuroflux::write_file_atomic(path, std::string(1 << 20, 'x')); }));
  std::filesystem::remove(path);
}

TEST_CASE("a torch archive that runs out of space is a data error, not an abort",
          "[util][unit]") {
  // torch's own file writer calls std::terminate when a write fails part way.
  const std::string path = "/tmp/neuroflux-full-disk-test.pt";
  neuroflux::write_file_atomic(path, "old");
  torch::serialize::OutputArchive archive;
  archive.write("weights", torch::zeros({1 << 16}));
  check_kept(path, fail_past_limit([&] { neuroflux::write_archive_atomic(path, archive); }));
  std::filesystem::remove(path);
}

TEST_CASE("a file that cannot be created is a data error naming it", "[util][unit]") {
  try {
    neuroflux::write_file_atomic("/proc/neuroflux-no-such-file.json", "{}");
    FAIL("writing under /proc must fail");
  } catch (const neuroflux::Error& e) {
    CHECK(e.code() == neuroflux::ExitCode::kBadData);
    CHECK(std::string(e.what()).find("/proc/neuroflux-no-such-file.json") != std::string::npos);
  }
}

TEST_CASE("a file that cannot be read is a data error naming it and the system's reason",
          "[util][unit]") {
  const auto error_of = [](const std::string& path) -> std::pair<neuroflux::ExitCode, std::string> {
    try {
      neuroflux::read_file(path);
    } catch (const neuroflux::Error& e) {
      return {e.code(), e.what()};
    }
    return {neuroflux::ExitCode::kOk, ""};
  };
  // strerror's text for ENOENT, EISDIR (opened, then read fails) and ENOTDIR.
  const std::string dir = std::filesystem::temp_directory_path().string();
  for (const auto& [path, reason] :
       {std::pair<std::string, std::string>{dir + "/neuroflux-no-such-file", "No such file"},
        {dir, "Is a directory"},
        {"/proc/self/exe/x", "Not a directory"}}) {
    INFO(path);
    const auto error = error_of(path);
    CHECK(error.first == neuroflux::ExitCode::kBadData);
    CHECK(error.second.rfind(path + ": ", 0) == 0);
    CHECK(error.second.find(reason) != std::string::npos);
  }
  // No permission: root reads anything, so only where the tests run as another user.
  if (::geteuid() != 0) {
    const std::string path = dir + "/neuroflux-unreadable-" + std::to_string(::getpid());
    neuroflux::write_file_atomic(path, "secret");
    std::filesystem::permissions(path, std::filesystem::perms::none);
    const auto error = error_of(path);
    std::filesystem::remove(path);
    CHECK(error.first == neuroflux::ExitCode::kBadData);
    CHECK(error.second.find("Permission denied") != std::string::npos);
  }
  // A file's whole content, past read()'s first chunk.
  const std::string path = dir + "/neuroflux-read-file-" + std::to_string(::getpid());
  const std::string content(200000, 'x');
  neuroflux::write_file_atomic(path, content);
  CHECK(neuroflux::read_file(path) == content);
  std::filesystem::remove(path);
}

TEST_CASE("temporaries of dead writers are removed, live ones' and other files stay",
          "[util][unit]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("neuroflux-stale-" + std::to_string(getpid()));
  fs::create_directories(dir);
  // A pid that is certainly gone: a child that has exited and been reaped.
  const pid_t child = fork();
  if (child == 0) _exit(0);
  REQUIRE(child > 0);
  waitpid(child, nullptr, 0);
  const std::string dead = "model.pt.tmp-" + std::to_string(child);
  const std::string mine = "report.json.tmp-" + std::to_string(getpid());
  const std::string parent = "state.json.tmp-" + std::to_string(getppid());
  for (const std::string name :
       {dead, mine, parent, std::string("plan.json"), std::string("notes.tmp-draft")})
    std::ofstream(dir / name) << "x";
  fs::create_directories(dir / "checkpoint");
  std::ofstream(dir / "checkpoint" / dead) << "x";

  neuroflux::remove_stale_temporaries(dir.string());
  CHECK_FALSE(fs::exists(dir / dead));
  CHECK(fs::exists(dir / mine));
  CHECK(fs::exists(dir / parent));
  CHECK(fs::exists(dir / "plan.json"));
  CHECK(fs::exists(dir / "notes.tmp-draft"));
  CHECK(fs::exists(dir / "checkpoint" / dead));  // subdirectories are their owners' to clean
  fs::remove_all(dir);
}
