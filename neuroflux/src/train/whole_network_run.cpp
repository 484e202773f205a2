#include "train/whole_network_run.h"

#include <torch/torch.h>

#include "neuroflux/distributed/data_parallel.h"
#include "neuroflux/exit/exported_model.h"
#include "neuroflux/models/module_snapshot.h"
#include "neuroflux/optim/optim.h"
#include "neuroflux/plan/lr_scaling.h"
#include "neuroflux/train/backprop_trainer.h"
#include "neuroflux/train/evaluate.h"
#include "neuroflux/util/progress.h"

namespace neuroflux {

namespace {

// Data parallel: each rank trains on its slice of every global batch (see sharded_input).
std::unique_ptr<BlockInput> training_input(const TrainingSetup& setup,
                                           const data::DataSplits& data) {
  auto input = data_input(data, setup.config, setup.device);
  if (!setup.comm) return input;
  return sharded_input(std::move(input), setup.comm->rank(), setup.comm->world_size());
}

}  // namespace

WholeNetworkRun::WholeNetworkRun(const TrainingSetup& setup, const data::DataSplits& data,
                                 std::string what)
    : setup_(setup),
      data_(data),
      what_(std::move(what)),
      meter_(MemoryMeter::of(setup.device)),
      checkpoint_(setup),
      input_(training_input(setup, data)) {}

int64_t WholeNetworkRun::eval_batch_size() const {
  const int64_t eval_batch = setup_.config.train.eval_batch_size;
  return eval_batch > 0 ? eval_batch : batch_size_;
}

double WholeNetworkRun::accuracy(const std::function<at::Tensor(const at::Tensor& x)>& logits,
                                 const data::ImageSet& set) const {
  return evaluate(logits, set, eval_batch_size(), setup_.device).accuracy;
}

void WholeNetworkRun::settle_batch_size(torch::nn::Module& model,
                                        const std::function<void(int64_t)>& trial) {
  if (resuming()) {
    batch_size_ = checkpoint_.read_saved_state(
        [](const nlohmann::json& state) { return state.at("batch_size").get<int64_t>(); });
    return;
  }
  const ModuleSnapshot snapshot(model);
  {
    const MeasuredPhase trials = phase("batch_trials");
    batch_size_ = choose_batch_size(setup_.config, meter_, trial, what_);
  }
  // The per-rank budget may admit different batches on different ranks; all take the smallest.
  if (comm()) batch_size_ = comm()->min(batch_size_);
  snapshot.restore(model);
}

void WholeNetworkRun::trial_on_random_batch(
    torch::nn::Module& model, int64_t b,
    const std::function<void(const at::Tensor& x, const at::Tensor& y)>& step) const {
  const at::Tensor x = torch::randn({b, data_.channels, data_.height, data_.width},
                                    torch::TensorOptions(setup_.device));
  const at::Tensor y = torch::randint(0, data_.num_classes, {b},
                                      torch::TensorOptions(setup_.device).dtype(torch::kLong));
  for (int i = 0; i < 2; ++i) step(x, y);
  for (auto& p : model.parameters()) p.mutable_grad() = at::Tensor();
}

void WholeNetworkRun::load_checkpoint(torch::nn::Module& model,
                                      torch::optim::Optimizer* optimizer) {
  // The phases measured before the checkpoint was read (none yet but the load) stay.
  const PhasePeaks before = state_.phase_peaks;
  {
    const MeasuredPhase resume = phase("resume");
    state_ = checkpoint_.load(model, optimizer);
    state_.phase_peaks.merge(before);
  }
  log_line("resuming " + what_ + " after epoch " + std::to_string(state_.epochs_done));
}

void WholeNetworkRun::save_checkpoint(const torch::nn::Module& model,
                                      const torch::optim::Optimizer* optimizer,
                                      const nlohmann::json& extra,
                                      const std::vector<std::string>& files) {
  checkpoint_.save(model, optimizer, state_, batch_size_, extra, files);
}

double WholeNetworkRun::train_and_test(torch::nn::Module& model, const EpochHooks& hooks) {
  for (int64_t epoch = state_.epochs_done; epoch < setup_.config.train.epochs; ++epoch)
    train_epoch(model, epoch, hooks);
  model.eval();
  const MeasuredPhase test = phase("test");
  Stopwatch eval_watch;
  const double test_accuracy = accuracy(hooks.test_logits, data_.test);
  state_.eval_seconds += eval_watch.seconds();
  return test_accuracy;
}

void WholeNetworkRun::train_epoch(torch::nn::Module& model, int64_t epoch,
                                  const EpochHooks& hooks) {
  const TrainConfig& train = setup_.config.train;
  BatchLrSchedule schedule(train, run_lr(train, batch_size_), train.epochs,
                           input_->size(Split::kTrain), batch_size_, hooks.set_lr);
  const double lr = schedule.start_epoch(epoch);
  model.train();
  EpochStats stats;
  {
    const MeasuredPhase training = phase("train");
    stats = run_epoch(*input_, batch_size_, epoch,
                      "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(train.epochs),
                      [&](const at::Tensor& x, const at::Tensor& y) {
                        schedule.before_batch();
                        return hooks.train_step(x, y);
                      });
    if (comm()) average_buffers(*comm(), model);
  }
  state_.train_seconds += stats.seconds;

  Stopwatch eval_watch;
  Validation val;
  {
    const MeasuredPhase validation = phase("validate");
    val = hooks.validate();
  }
  const double eval_seconds = eval_watch.seconds();
  state_.eval_seconds += eval_seconds;
  record_epoch(epoch, lr, stats, val, eval_seconds);
  log_line(what_ + " epoch " + std::to_string(epoch + 1) + ": loss " + std::to_string(stats.loss) +
           ", " + hooks.validation_name + " " + std::to_string(val.accuracy) + ", " +
           std::to_string(stats.seconds) + " s");
  if (!checkpoint_.enabled()) return;
  const MeasuredPhase saving = phase("checkpoint");
  hooks.checkpoint(state_.epochs_done);
}

void WholeNetworkRun::record_epoch(int64_t epoch, double lr, const EpochStats& stats,
                                   const Validation& val, double eval_seconds) {
  HistoryEntry entry = epoch_history_entry(epoch, stats, lr, batch_size_);
  entry.val_accuracy = val.accuracy;
  entry.seconds = state_.train_seconds;
  entry.eval_seconds = eval_seconds;
  entry.head_val_accuracy = val.heads;
  state_.history.push_back(entry);
  state_.epochs_done = epoch + 1;
}

Report WholeNetworkRun::report(UnitChainImpl& chain, double test_accuracy) {
  const Config& config = setup_.config;
  Report report = make_report_skeleton(config, chain, data_, setup_.device);
  report.phase_peaks = state_.phase_peaks;
  report.peak_memory_bytes = state_.phase_peaks.max();
  report.train_seconds = state_.train_seconds;
  report.eval_seconds = state_.eval_seconds;
  report.history = state_.history;
  report.final.val_accuracy = state_.history.empty() ? 0.0 : state_.history.back().val_accuracy;
  report.final.test_accuracy = test_accuracy;
  report.final.params = report.full_model_params;
  report.final.exit_unit = chain.size() - 1;
  report.blocks.push_back(
      whole_network_block(chain.size(), batch_size_, config.train.epochs, state_));
  if (comm()) add_rank_fields(report, *comm(), config.distributed.mode);
  return report;
}

void WholeNetworkRun::write_results(UnitChain& chain, Report& report) {
  if (setup_.out_dir.empty() || !setup_.write_results) return;
  {
    const MeasuredPhase exporting = phase("export");
    save_full_chain(chain, setup_.config, setup_.out_dir + "/model.pt");
  }
  report.phase_peaks.merge(state_.phase_peaks);
  report.peak_memory_bytes = report.phase_peaks.max();
  report.write(setup_.out_dir);
}

MeasuredPhase WholeNetworkRun::phase(const std::string& name) {
  return MeasuredPhase(meter_, state_.phase_peaks, name, setup_.config.memory.budget);
}

}  // namespace neuroflux
