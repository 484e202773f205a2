#include "train/training_loop.h"

#include <torch/torch.h>

#include "neuroflux/distributed/data_parallel.h"
#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/util/progress.h"

namespace neuroflux {

using nlohmann::json;

EpochStats run_epoch(BlockInput& input, int64_t batch_size, int64_t epoch,
                     const std::string& label,
                     const std::function<StepResult(const at::Tensor&, const at::Tensor&)>& step) {
  Progress progress(label, input.size(Split::kTrain), "img/s");
  Stopwatch watch;
  const CpuUsage cpu_before = CpuUsage::of_process();
  // Host bookkeeping, outside the device budget as on a GPU: on a CPU run these two scalars
  // stayed alive through every step, so a run at the smallest budget the batch trial named ran
  // out of memory by their 16 bytes.
  at::Tensor loss_sum, correct;
  {
    UntrackedScope host;
    loss_sum = torch::zeros({}, torch::kDouble);
    correct = torch::zeros({}, torch::kLong);
  }
  int64_t seen = 0, batches = 0;
  input.train_epoch(batch_size, epoch, [&](const at::Tensor& x, const at::Tensor& y) {
    // Batch norm cannot normalise a batch of one sample (the last, partial batch can be one).
    if (x.size(0) < 2) return;
    const StepResult r = step(x, y);
    loss_sum += r.loss.to(torch::kCPU).to(torch::kDouble) * x.size(0);
    correct += r.correct.to(torch::kCPU);
    seen += x.size(0);
    if (Progress::on_terminal() || ++batches % 16 == 0)
      progress.update(seen, "loss " + std::to_string(loss_sum.item<double>() / seen).substr(0, 6));
  });
  EpochStats stats;
  stats.seconds = watch.seconds();
  stats.cpu = CpuUsage::of_process() - cpu_before;
  stats.samples = seen;
  stats.loss = seen > 0 ? loss_sum.item<double>() / seen : 0.0;
  stats.accuracy = seen > 0 ? static_cast<double>(correct.item<int64_t>()) / seen : 0.0;
  progress.finish("loss " + std::to_string(stats.loss).substr(0, 6));
  return stats;
}

PhasePeaks checkpoint_phase_peaks(const json& state, const char* old_peak_key) {
  if (state.contains("phase_peaks")) return phase_peaks_from_json(state);
  PhasePeaks peaks;
  const int64_t old_peak = state.value(old_peak_key, int64_t{0});
  if (old_peak > 0) peaks.record("before_resume", old_peak);
  return peaks;
}

json LoopState::to_json() const {
  // peak_bytes too, for a reader of the older format.
  json j = {{"epochs_done", epochs_done}, {"train_seconds", train_seconds},
            {"eval_seconds", eval_seconds}, {"peak_bytes", phase_peaks.max()},
            {"history", history_to_json(history)}};
  j.update(phase_peaks_to_json(phase_peaks));
  return j;
}

LoopState LoopState::from_json(const json& state) {
  LoopState s;
  s.epochs_done = state.at("epochs_done");
  s.train_seconds = state.at("train_seconds");
  s.eval_seconds = state.at("eval_seconds");
  s.phase_peaks = checkpoint_phase_peaks(state, "peak_bytes");
  s.history = history_from_json(state.at("history"));
  return s;
}

BlockReport whole_network_block(int64_t units, int64_t batch_size, int64_t epochs,
                                const LoopState& state) {
  BlockReport block;
  block.first_unit = 0;
  block.last_unit = units - 1;
  block.batch_size = batch_size;
  block.epochs = epochs;
  block.peak_memory_bytes = state.phase_peaks.max();
  block.seconds = state.train_seconds;
  return block;
}

HistoryEntry epoch_history_entry(int64_t epoch, const EpochStats& stats, double lr,
                                 int64_t batch_size) {
  HistoryEntry entry;
  entry.epoch = epoch + 1;
  entry.train_loss = stats.loss;
  entry.train_accuracy = stats.accuracy;
  entry.epoch_seconds = stats.seconds;
  entry.epoch_cpu = stats.cpu;
  entry.lr = lr;
  entry.batch_size = batch_size;
  return entry;
}

namespace {

/// Throws ConfigError when `state` was written under a different configuration.
void check_resumable(const json& state, const Config& config, const std::string& where) {
  if (!state.contains("config")) return;
  const json now = resumable_config(config);
  if (state.at("config") == now) return;
  const json diff = json::diff(state.at("config"), now);
  std::string paths;
  for (const auto& d : diff) paths += (paths.empty() ? "" : ", ") + d.value("path", std::string());
  throw ConfigError(where + ": the checkpoint was written with a different config (" + paths +
                    "); resume with the same config or use a new output.dir");
}

}  // namespace

json resumable_config(const Config& config) {
  json j = config.to_json();
  j.erase("output");   // the same run may be resumed from a moved directory
  j.erase("threads");  // and with another thread count
  return j;
}

std::optional<json> resumable_checkpoint(const Checkpointer& checkpointer,
                                         const TrainingSetup& setup,
                                         const std::function<int64_t(const json& state)>& step) {
  const std::optional<json> saved =
      setup.resume && !setup.out_dir.empty() ? checkpointer.peek() : std::nullopt;
  // peek() checked that the record has a "state" object; what is in it is the trainer's.
  if (saved) {
    read_checkpoint_state(checkpointer.dir(), saved->at("state"), [&](const json& state) {
      check_resumable(state, setup.config, checkpointer.dir());
    });
  }
  if (setup.comm && setup.resume) {
    const int64_t saved_step =
        saved ? read_checkpoint_state(checkpointer.dir(), saved->at("state"), step) : -1;
    check_same_checkpoint(*setup.comm, saved_step, checkpointer.dir());
  }
  return saved;
}

Report make_report_skeleton(const Config& config, UnitChainImpl& model,
                            const data::DataSplits& data, const c10::Device& device) {
  Report r;
  r.method = config.method;
  r.model = model.name();
  r.dataset = config.data.name;
  r.device = device.str();
  r.budget_bytes = config.memory.budget;
  r.epochs = config.train.epochs;
  r.full_model_params = model.parameter_count();
  r.config = config.to_json();
  r.extra["threads"] = at::get_num_threads();
  r.extra["train_samples"] = data.train.size();
  r.extra["val_samples"] = data.val.size();
  r.extra["test_samples"] = data.test.size();
  if (config.data.name == "image_folder") r.extra["skipped_images"] = data.skipped_images;
  return r;
}

}  // namespace neuroflux
