#include "neuroflux/train/run.h"

#include <torch/torch.h>

#include <thread>

#include "neuroflux/data/data_splits.h"
#include "neuroflux/distributed/communicator.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/models/model_zoo.h"
#include "neuroflux/models/unit_groups.h"
#include "neuroflux/optim/optim.h"
#include "neuroflux/train/backprop_trainer.h"
#include "neuroflux/train/local_trainer.h"
#include "neuroflux/train/neuroflux_trainer.h"
#include "neuroflux/train/pipeline_trainer.h"
#include "neuroflux/util/atomic_file.h"
#include "neuroflux/util/progress.h"

namespace neuroflux {

void configure_threads(int64_t threads, int64_t local_ranks) {
  const auto cores = static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency()));
  const int64_t shared = std::max<int64_t>(1, cores / std::max<int64_t>(1, local_ranks));
  at::set_num_threads(static_cast<int>(threads > 0 ? threads : shared));
}

c10::Device parse_device(const std::string& text) {
  c10::Device device(c10::kCPU);
  try {
    device = c10::Device(text);
  } catch (const c10::Error&) {
    throw ConfigError("/device: expected \"cpu\", \"cuda\" or \"cuda:N\", got \"" + text + "\"");
  }
  if (device.is_cuda() && !torch::cuda::is_available())
    throw ConfigError("/device: \"" + text +
                      "\" requested but no CUDA device is usable (this build or machine has none)");
  return device;
}

/// Every method picks epochs (and NeuroFlux its exit) on the validation split and trains in
/// batches of at least two (batch norm): splits that leave either empty are refused up front.
void check_splits_usable(const data::DataSplits& splits, const DataConfig& data) {
  const std::string size_key = data.name == "synthetic" ? "/data/train_size"
                               : data.train_limit > 0   ? "/data/train_limit"
                                                        : "/data/val_fraction";
  if (splits.train.size() < 2)
    throw ConfigError(size_key + ": leaves " + std::to_string(splits.train.size()) +
                      " training sample(s) after the validation split; training needs at least 2");
  if (splits.val.size() == 0)
    throw ConfigError("/data/val_fraction: " + std::to_string(data.val_fraction) + " of " +
                      std::to_string(splits.train.size()) +
                      " training samples holds none out for validation, which chooses the best "
                      "epoch and the exit; raise data.val_fraction or " +
                      (data.name == "synthetic" ? "data.train_size" : "data.train_limit"));
}

PreparedRun prepare_run(const Config& config, int64_t local_ranks) {
  configure_threads(config.threads, local_ranks);
  const c10::Device device = parse_device(config.device);
  MemoryMeter& meter = MemoryMeter::of(device);  // installs the CPU tracking allocator early
  (void)meter;
  torch::manual_seed(static_cast<uint64_t>(config.seed));

  Stopwatch load_watch;
  data::DataSplits splits = data::load_splits(config.data, static_cast<uint64_t>(config.seed),
                                              data::run_data_cache_dir(config));
  const std::string skipped =
      splits.skipped_images > 0
          ? ", " + std::to_string(splits.skipped_images) + " unreadable image(s) skipped"
          : "";
  log_line("data " + config.data.name + ": " + std::to_string(splits.train.size()) + " train, " +
           std::to_string(splits.val.size()) + " val, " + std::to_string(splits.test.size()) +
           " test, " + std::to_string(splits.channels) + "x" + std::to_string(splits.height) +
           "x" + std::to_string(splits.width) + skipped + " (" +
           std::to_string(load_watch.seconds()) + " s)");
  check_splits_usable(splits, config.data);
  if (config.model.in_channels != 0 && config.model.in_channels != splits.channels)
    throw ConfigError("/model/in_channels: " + std::to_string(config.model.in_channels) +
                      " does not match the data set's " + std::to_string(splits.channels) +
                      " channels");
  const int64_t num_classes =
      config.model.num_classes != 0 ? config.model.num_classes : splits.num_classes;
  if (num_classes < splits.num_classes)
    throw ConfigError("/model/num_classes: " + std::to_string(num_classes) +
                      " is fewer than the data set's " + std::to_string(splits.num_classes) +
                      " classes");
  UnitChain model = apply_module_units(
      build_model(config.model, {splits.channels, splits.height, splits.width}, num_classes),
      config);
  return {splits, model, device};
}

Report run_training(const Config& config, bool resume, std::shared_ptr<Communicator> comm,
                    int64_t local_ranks) {
  // Refused before any data loads: data-parallel ranks all-reduce gradients after backward.
  if (comm && config.distributed.mode == "data" && config.train.fused_update)
    throw fused_update_data_parallel_error();
  TrainingSetup setup;
  setup.config = config;
  setup.out_dir = config.output.dir;
  setup.resume = resume;
  if (comm) {
    setup.comm = comm;
    if (comm->rank() > 0) {
      setup.out_dir += "/rank-" + std::to_string(comm->rank());
      setup.write_results = false;
    }
  }
  if (!setup.out_dir.empty()) prepare_output_directory(setup.out_dir);  // before data loads
  PreparedRun run = prepare_run(config, local_ranks);
  setup.device = run.device;
  if (comm && run.device.is_cuda())
    throw ConfigError("/device: distributed training on CUDA needs ProcessGroupNCCL, which this "
                      "build does not include; use \"cpu\" (Gloo)");
  if (setup.write_results)
    write_file_atomic(setup.out_dir + "/config.json", config.to_json().dump(2) + "\n");
  if (comm && config.distributed.mode == "pipeline")
    return PipelineTrainer(setup).fit(run.model, run.data);

  if (config.method == "backprop") return BackpropTrainer(setup).fit(run.model, run.data);
  if (config.method == "local") return LocalTrainer(setup).fit(run.model, run.data);
  return NeuroFluxTrainer(setup).fit(run.model, run.data);
}

}  // namespace neuroflux
