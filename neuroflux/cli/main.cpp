// `neuroflux`: train, profile, plan, eval and bench from JSON configs. Every failure ends with a
// one-line message and the exit code of neuroflux::ExitCode.
#include <c10/util/Exception.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "commands.h"
#include "neuroflux/util/closest_name.h"
#include "neuroflux/util/errors.h"

namespace {

using Command = int (*)(const neuroflux::cli::Args&);

struct CommandEntry {
  Command run;
  const char* what;
  const char* example;  ///< one real command line, shown by `neuroflux --help`
};

/// In the order `neuroflux --help` lists them: the everyday commands first.
const std::vector<std::pair<std::string, CommandEntry>>& commands() {
  static const std::vector<std::pair<std::string, CommandEntry>> table = {
      {"train",
       {&neuroflux::cli::train_command, "train a network from a JSON config",
        "neuroflux train --config configs/quickstart.json --set method=neuroflux "
        "--set memory.budget=16MiB"}},
      {"plan",
       {&neuroflux::cli::plan_command, "print NeuroFlux's plan without training",
        "neuroflux plan --config configs/vgg11-fmnist.json --set memory.budget=32MiB"}},
      {"profile",
       {&neuroflux::cli::profile_command, "measure each unit's memory and time",
        "neuroflux profile --config configs/quickstart.json"}},
      {"eval",
       {&neuroflux::cli::eval_command, "accuracy and speed of an exported model",
        "neuroflux eval --config configs/quickstart.json --model runs/quickstart/model.pt"}},
      {"bench",
       {&neuroflux::cli::bench_command, "run methods side by side under one budget",
        "neuroflux bench --config configs/quickstart.json --set memory.budget=16MiB "
        "--methods backprop,neuroflux --out runs/bench"}},
      {"bench-ops",
       {&neuroflux::cli::bench_ops_command, "custom operator micro-benchmark",
        "neuroflux bench-ops --size 1048576 --repeats 5"}},
      {"bench-rowconv",
       {&neuroflux::cli::bench_rowconv_command, "row-centric conv stacks against plain backprop",
        "neuroflux bench-rowconv --model vgg11 --image-size 64 --stripes 4,8"}},
  };
  return table;
}

void usage(FILE* out) {
  std::fprintf(out,
               "usage: neuroflux COMMAND [options]   "
               "(neuroflux COMMAND --help: its options and more examples)\n\nCommands:\n");
  for (const auto& [name, entry] : commands())
    std::fprintf(out, "  %-14s %s\n", name.c_str(), entry.what);
  std::fprintf(out, "\nExamples:\n");
  for (const auto& [name, entry] : commands()) std::fprintf(out, "  %s\n", entry.example);
  std::fprintf(out,
               "\nExit codes: 0 ok, 1 unexpected failure, 2 bad config or command line, 3 bad or "
               "unwritable\nfile, 4 nothing fits memory.budget, 5 another rank of a distributed "
               "run failed.\n");
  std::fprintf(out, "\nneuroflux %s\n", NEUROFLUX_VERSION);
}

const CommandEntry* find_command(const std::string& name) {
  for (const auto& [n, entry] : commands())
    if (n == name) return &entry;
  return nullptr;
}

std::vector<std::string> command_names() {
  std::vector<std::string> names;
  for (const auto& [name, entry] : commands()) names.push_back(name);
  return names;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? static_cast<int>(neuroflux::ExitCode::kBadInput) : 0;
  }
  if (std::strcmp(argv[1], "--version") == 0) {
    std::printf("neuroflux %s\n", NEUROFLUX_VERSION);
    return 0;
  }
  // `neuroflux help` and `neuroflux help COMMAND`, as git has them.
  const bool help_wanted = std::strcmp(argv[1], "help") == 0;
  if (help_wanted && argc == 2) {
    usage(stdout);
    return 0;
  }
  const std::string name = help_wanted ? argv[2] : argv[1];
  const CommandEntry* command = find_command(name);
  if (command == nullptr) {
    if (name[0] == '-')
      std::fprintf(stderr,
                   "neuroflux: unknown command '%s': the command comes first "
                   "(neuroflux COMMAND [options])\n\n",
                   name.c_str());
    else
      std::fprintf(stderr, "neuroflux: unknown command '%s'%s\n\n", name.c_str(),
                   neuroflux::did_you_mean(name, command_names()).c_str());
    usage(stderr);
    return static_cast<int>(neuroflux::ExitCode::kBadInput);
  }
  // Past a file size limit (ulimit -f) the kernel sends SIGXFSZ, which ends the process silently
  // and leaves a temporary behind; ignored, the write fails with EFBIG and the run exits 3 naming
  // the file, as on a full disk.
  std::signal(SIGXFSZ, SIG_IGN);
  const neuroflux::cli::Args args =
      help_wanted ? neuroflux::cli::Args{"--help"} : neuroflux::cli::Args(argv + 2, argv + argc);
  try {
    return command->run(args);
  } catch (const neuroflux::Error& e) {
    std::fprintf(stderr, "neuroflux: error: %s\n", e.what());
    return static_cast<int>(e.code());
  } catch (const c10::OutOfMemoryError& e) {
    std::fprintf(stderr, "neuroflux: error: %s\n", e.what_without_backtrace());
    return static_cast<int>(neuroflux::ExitCode::kOverBudget);
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "neuroflux: error: %s\n", e.what_without_backtrace());
    return static_cast<int>(neuroflux::ExitCode::kFailure);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "neuroflux: error: %s\n", e.what());
    return static_cast<int>(neuroflux::ExitCode::kFailure);
  }
}
