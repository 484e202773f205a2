#include "neuroflux/train/block_trainer.h"

#include <torch/torch.h>

#include <algorithm>
#include <memory>

#include "neuroflux/distributed/data_parallel.h"
#include "neuroflux/distributed/grad_reducer.h"
#include "neuroflux/local/unit_step.h"
#include "neuroflux/memory/measured_phase.h"
#include "neuroflux/models/module_snapshot.h"
#include "neuroflux/models/sequential_stage.h"
#include "neuroflux/optim/optim.h"
#include "neuroflux/util/progress.h"
#include "train/training_loop.h"

namespace neuroflux {

std::vector<double> evaluate_block_heads(LocalModel& model, BlockInput& input, Split split,
                                         int64_t first, int64_t last, int64_t batch_size,
                                         std::vector<std::vector<float>>* log_probs) {
  torch::NoGradGuard no_grad;
  for (int64_t i = first; i <= last; ++i) {
    model->chain()->unit(i)->eval();
    model->head(i)->eval();
  }
  std::vector<double> correct(static_cast<size_t>(last - first + 1), 0.0);
  if (log_probs != nullptr) log_probs->assign(correct.size(), {});
  int64_t seen = 0;
  input.in_order(split, batch_size, [&](const at::Tensor& x, const at::Tensor& y) {
    at::Tensor h = x;
    for (int64_t i = first; i <= last; ++i) {
      h = model->chain()->unit(i)->forward(h);
      const at::Tensor logits = model->head(i)->forward(h);
      correct[i - first] += logits.argmax(1).eq(y).sum().item<double>();
      if (log_probs != nullptr) {
        const at::Tensor lp = torch::log_softmax(logits, 1).to(torch::kCPU).contiguous();
        auto& out = (*log_probs)[static_cast<size_t>(i - first)];
        out.insert(out.end(), lp.data_ptr<float>(), lp.data_ptr<float>() + lp.numel());
      }
    }
    seen += x.size(0);
  });
  for (auto& c : correct) c /= std::max<int64_t>(1, seen);
  return correct;
}

namespace {

/// What a block's training keeps across its epochs.
struct BlockParts {
  std::vector<std::unique_ptr<torch::optim::Optimizer>> optimizers;  ///< one per unit
  /// The block's units and heads as one module: for snapshots of the best weights (in untracked
  /// host memory) and for averaging buffers across ranks.
  torch::nn::Sequential modules;
  std::vector<std::unique_ptr<GradReducer>> reducers;  ///< data parallel only
  std::vector<UnitMode> modes;
  std::string name;
};

BlockParts block_parts(LocalModel& model, const BlockTrainingOptions& o, const Config& config) {
  const int64_t first = o.first_unit, last = o.last_unit;
  BlockParts parts;
  for (int64_t i = first; i <= last; ++i)
    parts.optimizers.push_back(
        make_optimizer(model->unit_and_head_parameters(i), config.train, config.memory, o.lr));
  for (int64_t i = first; i <= last; ++i) {
    parts.modules->push_back(as_stage(model->chain()->unit(i)));
    parts.modules->push_back(as_stage(model->head(i)));
  }
  if (o.comm)
    for (int64_t i = first; i <= last; ++i)
      parts.reducers.push_back(std::make_unique<GradReducer>(
          o.comm, model->unit_and_head_parameters(i), o.bucket_bytes));
  parts.modes.assign(static_cast<size_t>(last - first + 1), UnitMode::kPlain);
  for (size_t k = 0; k < o.unit_modes.size() && k < parts.modes.size(); ++k)
    parts.modes[k] = unit_mode_from_string(o.unit_modes[k]);
  parts.name = "block " + std::to_string(o.block_index) + " (units " + std::to_string(first) +
               "-" + std::to_string(last) + ")";
  return parts;
}

EpochStats train_epoch(LocalModel& model, BlockInput& input, BlockParts& parts,
                       const BlockTrainingOptions& o, int64_t epoch, BatchLrSchedule& schedule) {
  const int64_t first = o.first_unit, last = o.last_unit;
  for (int64_t i = first; i <= last; ++i) {
    model->chain()->unit(i)->train();
    model->head(i)->train();
  }
  return run_epoch(
      input, o.batch_size, epoch,
      parts.name + " epoch " + std::to_string(epoch + 1) + "/" + std::to_string(o.max_epochs),
      [&](const at::Tensor& x, const at::Tensor& y) {
        schedule.before_batch();
        at::Tensor h = x;
        UnitStepResult r;
        for (int64_t i = first; i <= last; ++i) {
          r = unit_step(model->chain()->unit(i), model->head(i), *parts.optimizers[i - first], h,
                        y, parts.reducers.empty() ? nullptr : parts.reducers[i - first].get(),
                        parts.modes[static_cast<size_t>(i - first)], &model->loss_terms(i));
          h = r.output;
        }
        // The block's deepest head stands for the block's training loss.
        return StepResult{r.loss, r.correct};
      });
}

/// The heads' validation accuracies, the same on every rank (and their log-probabilities when
/// `log_probs` is given).
std::vector<double> validate(LocalModel& model, BlockInput& input, const BlockTrainingOptions& o,
                             std::vector<std::vector<float>>* log_probs) {
  std::vector<double> heads = evaluate_block_heads(model, input, Split::kVal, o.first_unit,
                                                   o.last_unit, o.eval_batch_size, log_probs);
  if (o.comm) {
    // Identical weights give identical accuracies, but the stop decision must agree even if a
    // rank's arithmetic differs in the last bit (another thread count): rank 0's counts.
    at::Tensor shared = torch::tensor(heads, torch::kDouble);
    o.comm->broadcast(shared, 0);
    heads.assign(shared.data_ptr<double>(), shared.data_ptr<double>() + shared.numel());
  }
  return heads;
}

HistoryEntry history_entry(const BlockTrainingOptions& o, int64_t epoch, const EpochStats& stats,
                           const std::vector<double>& heads, double lr) {
  HistoryEntry entry = epoch_history_entry(epoch, stats, lr, o.batch_size);
  entry.block = o.block_index;
  entry.val_accuracy = *std::max_element(heads.begin(), heads.end());
  entry.head_val_accuracy = heads;
  return entry;
}

}  // namespace

BlockOutcome train_block(LocalModel& model, BlockInput& input, const BlockTrainingOptions& o,
                         const Config& config) {
  PhasePeaks unrecorded;
  PhasePeaks& peaks = o.phases != nullptr ? *o.phases : unrecorded;
  MemoryMeter& meter = MemoryMeter::of(o.device);
  // Training and validation are siblings, not nested: each phase's peak is its own.
  auto phase = [&](const char* name) {
    return MeasuredPhase(meter, peaks, name, config.memory.budget);
  };
  BlockParts parts = [&] {
    const MeasuredPhase setup = phase("train");
    return block_parts(model, o, config);
  }();
  std::unique_ptr<ModuleSnapshot> best_weights;
  BlockOutcome outcome;
  double best = -1.0;
  int64_t since_improvement = 0;
  // Each block warms up and anneals over its own epochs (train.warmup_epochs).
  BatchLrSchedule schedule(config.train, o.lr, o.max_epochs, input.size(Split::kTrain),
                           o.batch_size, [&parts](double lr) {
                             for (auto& opt : parts.optimizers) set_learning_rate(*opt, lr);
                           });
  for (int64_t epoch = 0; epoch < o.max_epochs; ++epoch) {
    const double lr = schedule.start_epoch(epoch);
    EpochStats stats;
    {
      const MeasuredPhase training = phase("train");
      stats = train_epoch(model, input, parts, o, epoch, schedule);
      if (o.comm) average_buffers(*o.comm, *parts.modules);
    }
    outcome.train_seconds += stats.seconds;

    Stopwatch eval_watch;
    const MeasuredPhase validation = phase("validate");
    std::vector<std::vector<float>> log_probs;
    const std::vector<double> heads =
        validate(model, input, o, o.collect_log_probs ? &log_probs : nullptr);
    HistoryEntry entry = history_entry(o, epoch, stats, heads, lr);
    entry.eval_seconds = eval_watch.seconds();
    entry.seconds = o.seconds_before + outcome.train_seconds;
    outcome.eval_seconds += entry.eval_seconds;
    outcome.history.push_back(entry);
    outcome.epochs_run = epoch + 1;
    log_line(parts.name + " epoch " + std::to_string(epoch + 1) + ": loss " +
             std::to_string(entry.train_loss) + ", best head val accuracy " +
             std::to_string(entry.val_accuracy) + ", " + std::to_string(stats.seconds) + " s");

    if (entry.val_accuracy > best + o.min_delta || best < 0) {
      best = std::max(best, entry.val_accuracy);
      since_improvement = 0;
      outcome.best_epoch = epoch + 1;
      outcome.head_val_accuracy = heads;
      outcome.head_val_log_probs = std::move(log_probs);
      best_weights = std::make_unique<ModuleSnapshot>(*parts.modules);
    } else if (o.patience > 0 && ++since_improvement >= o.patience) {
      break;
    }
  }
  const MeasuredPhase restoring = phase("train");
  if (best_weights) best_weights->restore(*parts.modules);  // also drops the gradients
  for (auto& p : parts.modules->parameters()) p.mutable_grad() = at::Tensor();
  return outcome;
}

}  // namespace neuroflux
