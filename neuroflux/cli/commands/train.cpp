#include <cstdio>
#include <iostream>

#include "commands.h"
#include "config_args.h"
#include "neuroflux/train/run.h"

namespace neuroflux::cli {

int train_command(const Args& args) {
  cxxopts::Options options("neuroflux train", "Train a network as the config says; writes "
                                              "OUT/report.json, history.csv and the model.");
  add_config_options(options);
  options.add_options()("resume", "continue a killed run from OUT's checkpoint");
  const auto parsed = parse_args(options, args);
  if (parsed.count("help") != 0) {
    std::cout << options.help() << std::endl;
    return 0;
  }
  const Config config = load_config(parsed);
  const Report report = run_training(config, parsed.count("resume") != 0);
  std::printf("method %s  model %s  test accuracy %.4f  val accuracy %.4f  peak %lld bytes  "
              "train %.1f s\n",
              report.method.c_str(), report.model.c_str(), report.final.test_accuracy,
              report.final.val_accuracy, static_cast<long long>(report.peak_memory_bytes),
              report.train_seconds);
  std::printf("report: %s/report.json\n", config.output.dir.c_str());
  return 0;
}

}  // namespace neuroflux::cli
