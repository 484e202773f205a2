#include <cstdio>
#include <iostream>

#include "commands.h"
#include "config_args.h"
#include "neuroflux/distributed/communicator.h"
#include "neuroflux/distributed/launch.h"
#include "neuroflux/report/run_summary.h"
#include "neuroflux/train/run.h"

namespace neuroflux::cli {

namespace {

/// `args` without --nproc and its value: what each started rank runs.
Args without_nproc(const Args& args) {
  Args rest;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--nproc") {
      ++i;
      continue;
    }
    if (args[i].rfind("--nproc=", 0) == 0) continue;
    rest.push_back(args[i]);
  }
  return rest;
}

template <typename T>
std::optional<T> optional_arg(const cxxopts::ParseResult& parsed, const std::string& name) {
  if (parsed.count(name) == 0) return std::nullopt;
  return parsed[name].as<T>();
}

}  // namespace

int train_command(const Args& args) {
  cxxopts::Options options("neuroflux train", "Train a network as the config says; writes "
                                              "OUT/report.json, history.csv and the model.");
  add_config_options(options);
  options.add_options()("resume", "continue a killed run from OUT's checkpoint");
  options.add_options("distributed")
      ("nproc", "start N local ranks of this command (127.0.0.1, a free port)",
       cxxopts::value<int>())
      ("rank", "this process's rank in a job spanning machines", cxxopts::value<int>())
      ("world-size", "ranks in the job", cxxopts::value<int>())
      ("master", "HOST:PORT of rank 0's rendezvous (TCPStore)", cxxopts::value<std::string>());
  const auto parsed = parse_args(options, args);
  if (parsed.count("help") != 0) {
    const std::vector<Example> examples = {
        {"the quickstart config (simplecnn on Fashion-MNIST) into runs/quick/",
         "neuroflux train --config configs/quickstart.json --out runs/quick"},
        {"the same, trained block by block by NeuroFlux under 16 MiB",
         "neuroflux train --config configs/quickstart.json --set method=neuroflux "
         "--set memory.budget=16MiB --out runs/quick-nf"},
        {"backprop at the largest batch that fits 16 MiB",
         "neuroflux train --config configs/vgg11-fmnist.json --set method=backprop "
         "--set memory.budget=16MiB --set train.batch_size=auto --out runs/vgg11-bp"},
        {"continue a killed run where its last checkpoint left it",
         "neuroflux train --config configs/quickstart.json --out runs/quick --resume"},
        {"data parallel over 2 local ranks",
         "neuroflux train --config configs/quickstart.json --nproc 2 --out runs/quick-2ranks"}};
    std::cout << help_text(options, examples, {"", "distributed"}) << std::endl;
    return 0;
  }
  const Config config = load_config(parsed);
  if (parsed.count("nproc") != 0) {
    // Survivors of a failed rank report it within the timeout; give them that long, and more.
    return launch_local_ranks(parsed["nproc"].as<int>(), [&] {
      Args rank_args{"train"};
      const Args rest = without_nproc(args);
      rank_args.insert(rank_args.end(), rest.begin(), rest.end());
      return rank_args;
    }(), config.distributed.timeout + 30);
  }
  DistributedOptions job = resolve_distributed(optional_arg<int>(parsed, "rank"),
                                               optional_arg<int>(parsed, "world-size"),
                                               optional_arg<std::string>(parsed, "master"));
  job.timeout_seconds = config.distributed.timeout;
  std::shared_ptr<Communicator> comm;
  if (job.world_size > 1) comm = Communicator::connect(job);

  const Report report = run_training(config, parsed.count("resume") != 0, comm,
                                     job.local_world_size);
  if (comm && comm->rank() > 0) return 0;
  // The result of the command, on stdout like the other commands' (NEUROFLUX_QUIET silences only
  // progress and log lines, on stderr).
  std::fputs(run_summary(report, config.output.dir).c_str(), stdout);
  std::fflush(stdout);
  return 0;
}

}  // namespace neuroflux::cli
