#include "neuroflux/train/pipeline_trainer.h"

#include <torch/torch.h>

#include <cstdio>

#include "neuroflux/distributed/communicator.h"
#include "neuroflux/distributed/data_parallel.h"
#include "neuroflux/distributed/pipeline_link.h"
#include "neuroflux/exit/exit_selector.h"
#include "neuroflux/exit/exported_model.h"
#include "neuroflux/local/local_model.h"
#include "neuroflux/local/unit_step.h"
#include "neuroflux/memory/measured_phase.h"
#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/optim/optim.h"
#include "neuroflux/util/progress.h"
#include "train/epoch_checkpoint.h"
#include "train/training_loop.h"
#include "train/unit_optimizers.h"

namespace neuroflux {

using nlohmann::json;

namespace {

using Process = std::function<at::Tensor(const at::Tensor&, const at::Tensor&)>;

std::vector<int64_t> with_batch(int64_t batch, const std::vector<int64_t>& sample) {
  std::vector<int64_t> shape{batch};
  shape.insert(shape.end(), sample.begin(), sample.end());
  return shape;
}

/// This rank's stage: its units, the links to its neighbours, one optimizer per unit, and what
/// a checkpoint keeps of it.
class StageRun {
 public:
  StageRun(const TrainingSetup& setup, LocalModel model, const StagePlacement& placement,
           const data::DataSplits& data)
      : config_(setup.config),
        device_(setup.device),
        comm_(*setup.comm),
        model_(std::move(model)),
        first_(placement.stages[comm_.rank()].first_unit),
        last_(placement.stages[comm_.rank()].last_unit),
        batch_(placement.batch_size),
        input_(data_input(data, config_, device_)) {
    const int rank = comm_.rank();
    const int64_t depth = config_.distributed.micro_batches_in_flight;
    UnitChain& chain = model_->chain();
    if (rank > 0)
      from_prev_ = std::make_unique<PipelineLink>(
          comm_, rank - 1, with_batch(batch_, chain->output_shape(first_ - 1)), depth);
    if (rank + 1 < comm_.world_size())
      to_next_ = std::make_unique<PipelineLink>(
          comm_, rank + 1, with_batch(batch_, chain->output_shape(last_)), depth);
    for (int64_t i = first_; i <= last_; ++i)
      optimizers_.push_back(make_optimizer(model_->unit_and_head_parameters(i), config_.train,
                                           config_.memory, config_.train.lr));
  }

  void restore(const EpochCheckpoint& checkpoint);
  void save(EpochCheckpoint& checkpoint, const Profile& profile);
  /// One epoch through the stage, then the validation accuracy of every head.
  void train_epoch(int64_t epoch);
  /// Every head's accuracy on `split`, summed over the stages (each fills its own units).
  std::vector<double> evaluate(Split split);
  /// A phase of this stage under memory.budget, recorded in state.phase_peaks.
  MeasuredPhase phase(const char* name) {
    return MeasuredPhase(MemoryMeter::of(device_), state.phase_peaks, name,
                         config_.memory.budget);
  }

  LoopState state;
  double compute_seconds = 0;
  int64_t micro_batches = 0;
  std::vector<double> heads;  ///< latest validation accuracy per unit

 private:
  /// One phase through this stage: rank 0 reads `source`, the others receive; `process` runs the
  /// stage's units on a micro-batch and returns what the next stage gets.
  void run_phase(const std::function<void(const BatchFn&)>& source, const Process& process);
  void set_mode(bool train);
  at::Tensor train_step(const at::Tensor& x, const at::Tensor& y, at::Tensor& loss_sum);

  const Config& config_;
  c10::Device device_;
  Communicator& comm_;
  LocalModel model_;
  int64_t first_, last_, batch_;
  std::unique_ptr<BlockInput> input_;
  std::unique_ptr<PipelineLink> from_prev_, to_next_;
  UnitOptimizers optimizers_;
};

void StageRun::restore(const EpochCheckpoint& checkpoint) {
  const PhasePeaks before = state.phase_peaks;
  const MeasuredPhase resume = phase("resume");
  state = checkpoint.load(*model_, nullptr);
  state.phase_peaks.merge(before);
  const std::string file = checkpoint.read_saved_state([&](const json& saved) {
    compute_seconds = saved.at("compute_seconds");
    micro_batches = saved.at("micro_batches");
    return saved.at("optimizers_file").get<std::string>();
  });
  checkpoint.read_archive(file, [&](torch::serialize::InputArchive& archive) {
    load_unit_optimizers(optimizers_, first_, archive);
  });
  log_line("pipeline rank " + std::to_string(comm_.rank()) + ": resuming after epoch " +
           std::to_string(state.epochs_done));
}

void StageRun::save(EpochCheckpoint& checkpoint, const Profile& profile) {
  const int64_t epochs_done = state.epochs_done;
  const std::string file = unit_optimizers_file(epochs_done);
  save_unit_optimizers(optimizers_, first_, checkpoint.dir() + "/" + file);
  checkpoint.save(*model_, nullptr, state, batch_,
                  {{"optimizers_file", file},
                   {"compute_seconds", compute_seconds},
                   {"micro_batches", micro_batches},
                   {"profile", profile.to_json()}},
                  {file});
  if (epochs_done > 1)
    std::remove((checkpoint.dir() + "/" + unit_optimizers_file(epochs_done - 1)).c_str());
}

void StageRun::run_phase(const std::function<void(const BatchFn&)>& source,
                         const Process& process) {
  auto handle = [&](const at::Tensor& x, const at::Tensor& y) {
    const at::Tensor out = process(x.to(device_), y.to(device_));
    if (to_next_) to_next_->send(out.to(at::kCPU), y.to(at::kCPU));
  };
  if (from_prev_)
    from_prev_->receive_phase(handle);
  else
    source(handle);
  if (to_next_) to_next_->end_phase();
}

void StageRun::set_mode(bool train) {
  for (int64_t i = first_; i <= last_; ++i) {
    model_->chain()->unit(i)->train(train);
    model_->head(i)->train(train);
  }
}

std::vector<double> StageRun::evaluate(Split split) {
  torch::NoGradGuard no_grad;
  set_mode(false);
  const int64_t n = model_->size();
  at::Tensor correct = torch::zeros({n}, torch::kDouble);
  run_phase([&](const BatchFn& fn) { input_->in_order(split, batch_, fn); },
            [&](const at::Tensor& x, const at::Tensor& y) {
              at::Tensor h = x;
              for (int64_t i = first_; i <= last_; ++i) {
                h = model_->chain()->unit(i)->forward(h);
                correct[i] += model_->head(i)->forward(h).argmax(1).eq(y).sum().item<double>();
              }
              return h;
            });
  comm_.all_reduce_sum(correct);
  correct /= static_cast<double>(std::max<int64_t>(1, input_->size(split)));
  return std::vector<double>(correct.data_ptr<double>(), correct.data_ptr<double>() + n);
}

at::Tensor StageRun::train_step(const at::Tensor& x, const at::Tensor& y, at::Tensor& loss_sum) {
  Stopwatch step_watch;
  at::Tensor h = x;
  for (int64_t i = first_; i <= last_; ++i) {
    const UnitStepResult r = unit_step(model_->chain()->unit(i), model_->head(i),
                                       *optimizers_[i - first_], h, y, nullptr,
                                       UnitMode::kPlain, &model_->loss_terms(i));
    loss_sum[i] += r.loss.item<double>() * static_cast<double>(x.size(0));
    h = r.output;
  }
  compute_seconds += step_watch.seconds();
  ++micro_batches;
  return h;
}

void StageRun::train_epoch(int64_t epoch) {
  const int64_t n = model_->size();
  // Pipeline stages step per micro-batch as they arrive; the warm-up moves per epoch here.
  const double lr =
      scheduled_lr(config_.train, config_.train.lr, epoch, config_.train.epochs, 0, 1);
  for (auto& opt : optimizers_) set_learning_rate(*opt, lr);
  set_mode(true);
  at::Tensor loss_sum = torch::zeros({n}, torch::kDouble);
  int64_t seen = 0;
  Stopwatch epoch_watch;
  {
    const MeasuredPhase training = phase("train");
    run_phase(
        [&](const BatchFn& fn) {
          input_->train_epoch(batch_, epoch, [&](const at::Tensor& x, const at::Tensor& y) {
            if (x.size(0) >= 2) fn(x, y);  // batch norm needs two samples, as in run_epoch
          });
        },
        [&](const at::Tensor& x, const at::Tensor& y) {
          seen += x.size(0);
          return train_step(x, y, loss_sum);
        });
  }
  const double epoch_seconds = epoch_watch.seconds();
  state.train_seconds += epoch_seconds;
  comm_.all_reduce_sum(loss_sum);
  Stopwatch eval_watch;
  {
    const MeasuredPhase validation = phase("validate");
    heads = evaluate(Split::kVal);
  }
  state.eval_seconds += eval_watch.seconds();

  HistoryEntry entry;
  entry.epoch = epoch + 1;
  entry.train_loss = loss_sum[n - 1].item<double>() / std::max<int64_t>(1, seen);
  entry.val_accuracy = *std::max_element(heads.begin(), heads.end());
  entry.seconds = state.train_seconds;
  entry.epoch_seconds = epoch_seconds;
  entry.eval_seconds = eval_watch.seconds();
  entry.lr = lr;
  entry.batch_size = batch_;
  entry.head_val_accuracy = heads;
  state.history.push_back(entry);
  log_line("pipeline rank " + std::to_string(comm_.rank()) + " epoch " +
           std::to_string(epoch + 1) + ": best head val accuracy " +
           std::to_string(entry.val_accuracy) + ", " + std::to_string(epoch_seconds) +
           " s (computing " + std::to_string(compute_seconds) + " s so far)");
  state.epochs_done = epoch + 1;
}

}  // namespace

namespace {

/// The model every rank trains a stage of, and the profile its stages are placed by. Local
/// learning's fixed heads exist before profiling, as in LocalTrainer, so both start from the
/// same weights; NeuroFlux's adaptive heads come out of rank 0's profiling. Rank 0 measures (or,
/// resuming, reuses what it measured then); all place the stages from its figures, so all agree.
std::pair<LocalModel, Profile> stage_model(const TrainingSetup& setup, UnitChain chain,
                                           const EpochCheckpoint& checkpoint,
                                           PhasePeaks& phases) {
  const Config& config = setup.config;
  Communicator& comm = *setup.comm;
  LocalModel model{nullptr};
  if (config.method == "local") {
    model = LocalModel(chain, classic_head_specs(config, *chain), local_loss_spec(config));
    model->to(setup.device);
  }
  std::string profile_text;
  if (comm.rank() == 0 && checkpoint.resuming()) {
    profile_text = checkpoint.read_saved_state(
        [](const json& saved) { return saved.at("profile").dump(); });
  } else if (comm.rank() == 0) {
    const MeasuredPhase profiling(MemoryMeter::of(setup.device), phases, "profile",
                                  config.memory.budget);
    profile_text = pipeline_profile(config, chain, setup.device).to_json().dump();
  }
  Profile profile = Profile::from_json(json::parse(comm.broadcast_string(profile_text, 0)));
  if (config.method != "local") {
    std::vector<AuxHeadSpec> heads;
    for (const auto& u : profile.units) heads.push_back(u.head);
    model = LocalModel(chain, heads, local_loss_spec(config));
    model->to(setup.device);
    if (!checkpoint.resuming()) broadcast_module(comm, *model, 0);
  }
  return {model, profile};
}

/// Per stage: predicted against measured peak and seconds per micro-batch (compute only, and the
/// wall time of an epoch divided by its micro-batches, which includes waiting for neighbours).
std::vector<BlockReport> stage_reports(Communicator& comm, const StagePlacement& placement,
                                       const StageRun& run, int64_t peak, int64_t epochs) {
  const int64_t batches = std::max<int64_t>(1, run.micro_batches);
  const std::vector<int64_t> peaks = comm.all_gather(peak);
  const std::vector<int64_t> compute_us =
      comm.all_gather(static_cast<int64_t>(1e6 * run.compute_seconds / batches));
  const std::vector<int64_t> wall_us =
      comm.all_gather(static_cast<int64_t>(1e6 * run.state.train_seconds / batches));
  std::vector<BlockReport> reports;
  for (int64_t k = 0; k < comm.world_size(); ++k) {
    BlockReport b;
    b.first_unit = placement.stages[k].first_unit;
    b.last_unit = placement.stages[k].last_unit;
    b.batch_size = placement.batch_size;
    b.epochs = epochs;
    b.predicted_peak_bytes = static_cast<int64_t>(placement.stages[k].predicted_peak_bytes);
    b.peak_memory_bytes = peaks[k];
    b.seconds = run.state.train_seconds;
    b.extra = {{"rank", k},
               {"predicted_seconds_per_batch", placement.stages[k].predicted_seconds},
               {"measured_seconds_per_batch", static_cast<double>(compute_us[k]) / 1e6},
               {"wall_seconds_per_batch", static_cast<double>(wall_us[k]) / 1e6}};
    reports.push_back(b);
  }
  return reports;
}

/// Every rank takes the trained units of every stage, so rank 0 can export the network.
void gather_stages(Communicator& comm, LocalModel& model, const StagePlacement& placement) {
  for (int64_t k = 0; k < comm.world_size(); ++k)
    for (int64_t i = placement.stages[k].first_unit; i <= placement.stages[k].last_unit; ++i) {
      broadcast_module(comm, *model->chain()->unit(i), static_cast<int>(k));
      broadcast_module(comm, *model->head(i), static_cast<int>(k));
    }
}

void write_model_files(const TrainingSetup& setup, UnitChain chain, LocalModel& model,
                       const Profile& profile, const ExitChoice& exit) {
  const Config& config = setup.config;
  if (config.method == "local") {
    save_full_chain(chain, config, setup.out_dir + "/model.pt");
  } else {
    const auto exported = exit_network(chain, exit.unit, model->head(exit.unit));
    save_exported(exported,
                  describe_export(config, *chain, exit.unit, profile.units[exit.unit].head),
                  setup.out_dir + "/model.pt");
    save_full_chain(chain, config, setup.out_dir + "/full_model.pt");
  }
}

/// Tests every head, chooses the exit, and fills (on rank 0, writes) the report.
Report test_and_report(const TrainingSetup& setup, UnitChain chain, LocalModel& model,
                       const data::DataSplits& data, StageRun& run,
                       const StagePlacement& placement, const Profile& profile) {
  const Config& config = setup.config;
  Communicator& comm = *setup.comm;
  const int64_t n = chain->size();
  Stopwatch test_watch;
  std::vector<double> test_heads;
  {
    const MeasuredPhase testing = run.phase("test");
    test_heads = run.evaluate(Split::kTest);
  }
  run.state.eval_seconds += test_watch.seconds();
  const int64_t peak = run.state.phase_peaks.max();
  gather_stages(comm, model, placement);

  const std::vector<double>& heads = run.heads;
  std::vector<std::optional<double>> head_accuracy(heads.begin(), heads.end());
  const ExitChoice exit = config.method == "local"
                              ? ExitChoice{n - 1, heads.back(), n - 1, heads.back()}
                              : select_exit(head_accuracy, config.neuroflux.exit_tolerance);
  Report report = make_report_skeleton(config, *chain, data, setup.device);
  report.train_seconds = run.state.train_seconds;
  report.eval_seconds = run.state.eval_seconds;
  report.history = run.state.history;
  report.phase_peaks = run.state.phase_peaks;
  report.peak_memory_bytes = peak;
  report.final.val_accuracy = exit.val_accuracy;
  report.final.test_accuracy = test_heads[exit.unit];
  report.final.exit_unit = exit.unit;
  report.final.params = config.method == "local" ? report.full_model_params
                                                 : parameter_count(exit_network(model, exit.unit));
  report.extra["head_val_accuracy"] = heads;
  report.extra["head_test_accuracy"] = test_heads;
  report.extra["pipeline"] = placement.to_json();
  report.extra["profile_seconds"] = profile.seconds;
  report.blocks = stage_reports(comm, placement, run, peak, config.train.epochs);
  add_rank_fields(report, comm, config.distributed.mode);
  if (!setup.out_dir.empty() && setup.write_results) {
    // Measured on the rank that exports; the stages' peaks above were gathered before it.
    {
      const MeasuredPhase exporting = run.phase("export");
      write_model_files(setup, chain, model, profile, exit);
    }
    report.phase_peaks = run.state.phase_peaks;
    report.peak_memory_bytes = report.phase_peaks.max();
    report.write(setup.out_dir);
  }
  return report;
}

}  // namespace

PipelineTrainer::PipelineTrainer(TrainingSetup setup) : setup_(std::move(setup)) {
  TORCH_CHECK(setup_.comm, "PipelineTrainer needs a communicator");
}

Report PipelineTrainer::fit(UnitChain chain, const data::DataSplits& data) {
  const Config& config = setup_.config;
  Communicator& comm = *setup_.comm;
  chain->to(setup_.device);
  // Every rank checkpoints its own stage after each epoch (rank k under OUT/rank-k/); a resumed
  // job restarts all ranks from the epoch they all saved.
  EpochCheckpoint checkpoint(setup_);
  PhasePeaks profiling;
  auto [model, profile] = stage_model(setup_, chain, checkpoint, profiling);
  const StagePlacement placement = pipeline_placement(config, profile, data, comm.world_size());
  if (comm.rank() == 0) log_line("pipeline placement:\n" + placement.table());

  StageRun run(setup_, model, placement, data);
  run.state.phase_peaks.merge(profiling);
  if (checkpoint.resuming()) run.restore(checkpoint);
  run.heads = run.state.history.empty()
                  ? std::vector<double>(static_cast<size_t>(chain->size()), 0.0)
                  : run.state.history.back().head_val_accuracy;
  for (int64_t epoch = run.state.epochs_done; epoch < config.train.epochs; ++epoch) {
    run.train_epoch(epoch);
    if (!checkpoint.enabled()) continue;
    const MeasuredPhase saving = run.phase("checkpoint");
    run.save(checkpoint, profile);
  }
  return test_and_report(setup_, chain, model, data, run, placement, profile);
}

}  // namespace neuroflux
