// `neuroflux`: train, profile, plan, eval and bench from JSON configs. Every failure ends with a
// one-line message and the exit code of neuroflux::ExitCode.
#include <c10/util/Exception.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <map>

#include "commands.h"
#include "neuroflux/util/errors.h"

namespace {

using Command = int (*)(const neuroflux::cli::Args&);

const std::map<std::string, std::pair<Command, const char*>>& commands() {
  static const std::map<std::string, std::pair<Command, const char*>> table = {
      {"train", {&neuroflux::cli::train_command, "train a network from a JSON config"}},
      {"profile", {&neuroflux::cli::profile_command, "measure each unit's memory and time"}},
      {"plan", {&neuroflux::cli::plan_command, "print NeuroFlux's plan without training"}},
      {"eval", {&neuroflux::cli::eval_command, "accuracy and speed of an exported model"}},
      {"bench", {&neuroflux::cli::bench_command, "run methods side by side under one budget"}},
      {"bench-ops", {&neuroflux::cli::bench_ops_command, "custom operator micro-benchmark"}},
      {"bench-rowconv",
       {&neuroflux::cli::bench_rowconv_command, "row-centric conv stacks against plain backprop"}},
  };
  return table;
}

void usage(FILE* out) {
  std::fprintf(out, "usage: neuroflux COMMAND [options]   (neuroflux COMMAND --help)\n\n");
  for (const auto& [name, entry] : commands())
    std::fprintf(out, "  %-10s %s\n", name.c_str(), entry.second);
  std::fprintf(out, "\nneuroflux %s\n", NEUROFLUX_VERSION);
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
  const auto it = commands().find(argv[1]);
  if (it == commands().end()) {
    std::fprintf(stderr, "neuroflux: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return static_cast<int>(neuroflux::ExitCode::kBadInput);
  }
  // Past a file size limit (ulimit -f) the kernel sends SIGXFSZ, which ends the process silently
  // and leaves a temporary behind; ignored, the write fails with EFBIG and the run exits 3 naming
  // the file, as on a full disk.
  std::signal(SIGXFSZ, SIG_IGN);
  const neuroflux::cli::Args args(argv + 2, argv + argc);
  try {
    return it->second.first(args);
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
