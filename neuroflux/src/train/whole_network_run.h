// The frame backprop and classic local learning share: the whole network trained at one batch
// size for train.epochs epochs under memory.budget, validated and checkpointed after every epoch,
// tested at the end and reported as a single block. A trainer brings its model, optimizers and
// steps; the run owns the batch size, the loop state, the checkpoint and the training input.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <torch/nn/module.h>
#include <nlohmann/json.hpp>
#include <torch/optim/optimizer.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "neuroflux/data/block_input.h"
#include "neuroflux/data/data_splits.h"
#include "neuroflux/memory/measured_phase.h"
#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/models/unit_chain.h"
#include "neuroflux/report/report.h"
#include "neuroflux/train/training_setup.h"
#include "train/epoch_checkpoint.h"
#include "train/training_loop.h"

namespace neuroflux {

class Communicator;

/// What validation after an epoch found.
struct Validation {
  double accuracy = 0;        ///< the network's (local learning: its classifier head's)
  std::vector<double> heads;  ///< local learning: every unit's head; empty for backprop
};

/// What a trainer does at each point of the shared epoch loop.
struct EpochHooks {
  std::function<void(double lr)> set_lr;  ///< on every optimizer, before each epoch
  std::function<StepResult(const at::Tensor& x, const at::Tensor& y)> train_step;
  std::function<Validation()> validate;  ///< after each epoch, timed as evaluation
  std::string validation_name;           ///< what the epoch's log line calls the accuracy
  /// After each epoch, once its history entry is in the state; only when checkpoints are on.
  std::function<void(int64_t epochs_done)> checkpoint;
  /// The network whose test accuracy the run reports.
  std::function<at::Tensor(const at::Tensor& x)> test_logits;
};

class WholeNetworkRun {
 public:
  /// `what` names the run in log lines ("backprop vgg11"). Opens the checkpoint (a collective
  /// under --resume, see EpochCheckpoint) and the training input: this rank's shard of
  /// data.train when data parallel.
  WholeNetworkRun(const TrainingSetup& setup, const data::DataSplits& data, std::string what);

  const std::string& what() const { return what_; }
  Communicator* comm() const { return setup_.comm.get(); }
  MemoryMeter& meter() const { return meter_; }
  BlockInput& input() { return *input_; }
  const EpochCheckpoint& checkpoint() const { return checkpoint_; }
  bool resuming() const { return checkpoint_.resuming(); }
  int64_t batch_size() const { return batch_size_; }
  /// train.eval_batch_size, or the training batch when that is 0.
  int64_t eval_batch_size() const;
  /// The accuracy of `logits` on `set`, in batches of eval_batch_size(). The caller puts the
  /// network in eval mode.
  double accuracy(const std::function<at::Tensor(const at::Tensor& x)>& logits,
                  const data::ImageSet& set) const;

  /// The batch size to train with: the checkpoint's when resuming, else choose_batch_size's with
  /// `trial` (the smallest over the ranks). `model` is left as it was before the trials.
  void settle_batch_size(torch::nn::Module& model, const std::function<void(int64_t)>& trial);
  /// A batch-size trial: `step` twice on a random batch of `b` (the second step runs with the
  /// optimizer state and gradients the first created, as training does), gradients dropped after.
  void trial_on_random_batch(
      torch::nn::Module& model, int64_t b,
      const std::function<void(const at::Tensor& x, const at::Tensor& y)>& step) const;

  /// Resuming: the checkpoint's weights into `model` (and `optimizer`) and its loop state.
  void load_checkpoint(torch::nn::Module& model, torch::optim::Optimizer* optimizer);
  /// The state after the last recorded epoch, with `model` (and `optimizer`); `extra`'s fields
  /// come back in checkpoint().saved_state() on resume. `files`: the caller's archives in the
  /// checkpoint's directory that belong to it (EpochCheckpoint::save).
  void save_checkpoint(const torch::nn::Module& model, const torch::optim::Optimizer* optimizer,
                       const nlohmann::json& extra = nlohmann::json::object(),
                       const std::vector<std::string>& files = {});

  /// The epochs still to run on `model` (the phases "train", "validate", "checkpoint" each
  /// epoch), then its test accuracy ("test"), all under memory.budget.
  double train_and_test(torch::nn::Module& model, const EpochHooks& hooks);

  /// The fields every whole-network report has: memory, seconds, history, the final accuracies,
  /// the single block and, data parallel, every rank's figures (a collective).
  Report report(UnitChainImpl& chain, double test_accuracy);
  /// model.pt (measured as the phase "export", added to the report) and the report into
  /// out_dir, on the rank that writes results.
  void write_results(UnitChain& chain, Report& report);

  /// A phase of this run under memory.budget, recorded in its phase peaks (and so in the
  /// checkpoint and the report).
  MeasuredPhase phase(const std::string& name);

 private:
  void train_epoch(torch::nn::Module& model, int64_t epoch, const EpochHooks& hooks);
  /// The epoch's history entry, and the state counted up to it.
  void record_epoch(int64_t epoch, double lr, const EpochStats& stats, const Validation& val,
                    double eval_seconds);

  const TrainingSetup& setup_;
  const data::DataSplits& data_;
  std::string what_;
  MemoryMeter& meter_;
  EpochCheckpoint checkpoint_;
  std::unique_ptr<BlockInput> input_;
  int64_t batch_size_ = 0;
  LoopState state_;
};

}  // namespace neuroflux
