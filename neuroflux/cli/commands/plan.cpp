// `neuroflux profile` and `neuroflux plan`: what NeuroFlux measured and would do, without training.
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "config_args.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/plan/stage_placement.h"
#include "neuroflux/train/neuroflux_trainer.h"
#include "neuroflux/train/run.h"
#include "neuroflux/util/atomic_file.h"

namespace neuroflux::cli {
namespace {

int profile_or_plan(const Args& args, bool plan_wanted) {
  cxxopts::Options options(plan_wanted ? "neuroflux plan" : "neuroflux profile",
                           plan_wanted ? "Profile the units and print the training plan."
                                       : "Measure each unit with its head: memory and time.");
  add_config_options(options);
  options.add_options()("json", "print JSON instead of a table")(
      "save", "also write the JSON to this file", cxxopts::value<std::string>());
  if (!plan_wanted)
    options.add_options()(
        "allocations",
        "also trace each unit step: the live bytes at its peak by ATen operator, N largest",
        cxxopts::value<size_t>()->implicit_value("8"));
  if (plan_wanted)
    options.add_options()("world-size", "pipeline mode: place the units on N ranks",
                          cxxopts::value<int>());
  const auto parsed = parse_args(options, args);
  if (parsed.count("help") != 0) {
    std::vector<Example> examples;
    if (plan_wanted) {
      examples = {
          {"NeuroFlux's blocks and batch sizes for vgg11 under 32 MiB",
           "neuroflux plan --config configs/vgg11-fmnist.json --set memory.budget=32MiB"},
          {"save it; `train --set neuroflux.plan=vgg11-plan.json` then follows it",
           "neuroflux plan --config configs/vgg11-fmnist.json --set memory.budget=32MiB "
           "--save vgg11-plan.json"},
          {"pipeline mode: which units each of 2 ranks would train",
           "neuroflux plan --config configs/vgg11-fmnist.json --set method=local --world-size 2"}};
    } else {
      examples = {{"every unit's memory and time as a table",
                   "neuroflux profile --config configs/quickstart.json"},
                  {"as JSON, also saved to a file",
                   "neuroflux profile --config configs/vgg11-fmnist.json --json "
                   "--save vgg11-profile.json"},
                  {"what each unit step's peak is made of, by operator (10 largest)",
                   "neuroflux profile --config configs/quickstart.json --allocations=10"}};
    }
    std::cout << help_text(options, examples) << std::endl;
    return 0;
  }
  const Config config = load_config(parsed);
  if (plan_wanted && parsed.count("world-size") != 0) {
    const int ranks = parsed["world-size"].as<int>();
    if (ranks < 1) throw ConfigError("--world-size: expected at least 1, got " + std::to_string(ranks));
    // Profiled with the threads each of N local ranks would get.
    PreparedRun run = prepare_run(config, ranks);
    const Profile profile = pipeline_profile(config, run.model, run.device);
    const StagePlacement placement = pipeline_placement(config, profile, run.data, ranks);
    const nlohmann::json json = {{"profile", profile.to_json()}, {"pipeline", placement.to_json()}};
    if (parsed.count("save") != 0)
      write_file_atomic(parsed["save"].as<std::string>(), json.dump(2) + "\n");
    if (parsed.count("json") != 0)
      std::cout << json.dump(2) << std::endl;
    else
      std::cout << profile.table() << "\n" << placement.table();
    return 0;
  }
  PreparedRun run = prepare_run(config);
  TrainingSetup setup;
  setup.config = config;
  setup.device = run.device;
  NeuroFluxTrainer trainer(setup);
  const bool trace = parsed.count("allocations") != 0;
  if (trace && parsed["allocations"].as<size_t>() == 0)
    throw ConfigError("--allocations: expected at least 1 operator per step, got 0");
  if (trace && !run.device.is_cpu())
    throw ConfigError("--allocations: traces the CPU allocator only; the device is " +
                      run.device.str());
  const auto [profile, plan] = trainer.make_plan(run.model, run.data, trace);
  const nlohmann::json json = plan_wanted ? plan.to_json() : profile.to_json();
  if (parsed.count("save") != 0)
    write_file_atomic(parsed["save"].as<std::string>(), json.dump(2) + "\n");
  if (parsed.count("json") != 0) {
    std::cout << json.dump(2) << std::endl;
  } else {
    std::cout << profile.table() << "\n";
    if (trace) std::cout << profile.allocations_table(parsed["allocations"].as<size_t>());
    if (plan_wanted) std::cout << plan.table();
  }
  return 0;
}

}  // namespace

int profile_command(const Args& args) { return profile_or_plan(args, false); }
int plan_command(const Args& args) { return profile_or_plan(args, true); }

}  // namespace neuroflux::cli
