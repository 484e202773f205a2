// Optimizers and learning-rate schedules from TrainConfig.
#pragma once

#include <torch/optim/optimizer.h>

#include <functional>
#include <memory>
#include <vector>

#include "neuroflux/config/config.h"
#include "neuroflux/util/errors.h"

namespace neuroflux {

/// SGD (Nesterov momentum, weight decay) or Adam over `parameters`, at `lr` (the scheduled rate
/// is set per epoch with set_learning_rate): a ParameterwiseOptimizer
/// (optim/parameterwise_optimizer.h) with torch::optim::SGD / Adam's arithmetic, its state on
/// the device or the host (memory.optimizer_state), its updates in step() or fused into backward
/// (train.fused_update).
std::unique_ptr<torch::optim::Optimizer> make_optimizer(std::vector<at::Tensor> parameters,
                                                        const TrainConfig& train,
                                                        const MemoryConfig& memory, double lr);

/// True when `optimizer` updates parameters during backward (train.fused_update): their
/// gradients are gone once backward returns.
bool updates_in_backward(const torch::optim::Optimizer& optimizer);

/// The ConfigError for train.fused_update where gradients are all-reduced across data-parallel
/// ranks after backward: by then every weight has been updated from its own rank's gradient.
ConfigError fused_update_data_parallel_error();

/// The rate for 0-based `epoch` of `epochs`: cosine from `base_lr` towards 0, step decay by
/// `gamma` every `step_size` epochs, or constant.
double scheduled_lr(const TrainConfig& config, double base_lr, int64_t epoch, int64_t epochs);

/// The warm-up a schedule over `epochs` epochs uses: train.warmup_epochs, but at most half of
/// them, so that a NeuroFlux block shorter than the warm-up still anneals (a block's epochs
/// shrink with shallow_epoch_fraction and early stopping cannot be foreseen).
double warmup_epochs_for(const TrainConfig& config, int64_t epochs);

/// The rate for 0-based batch `batch` of `batches_per_epoch` in 0-based `epoch` of `epochs`.
/// Without warm-up it is scheduled_lr's epoch rate. With warm-up W (warmup_epochs_for), at
/// t = epoch + batch / batches_per_epoch epochs into the schedule:
///   t < W:  base_lr * (t + 1 / batches_per_epoch) / W, a linear ramp whose first step is small
///           but not 0 (a step at rate 0 is wasted) and whose last warm-up step reaches base_lr;
///   after:  cosine: base_lr * (1 + cos(pi (t - W) / (epochs - W))) / 2, per batch;
///           step and constant: scheduled_lr's epoch rate.
double scheduled_lr(const TrainConfig& config, double base_lr, int64_t epoch, int64_t epochs,
                    int64_t batch, int64_t batches_per_epoch);

/// Sets the scheduled rate before every batch of an epoch (with warm-up) or once at its start.
class BatchLrSchedule {
 public:
  /// `set_lr` applies a rate to the run's optimizers; `samples` and `batch_size` give the epoch's
  /// batch count (the last partial batch counts).
  BatchLrSchedule(const TrainConfig& config, double base_lr, int64_t epochs, int64_t samples,
                  int64_t batch_size, std::function<void(double)> set_lr);
  /// At an epoch's start: sets and returns its first batch's rate (what the history records).
  double start_epoch(int64_t epoch);
  /// Before each batch: sets the rate of the next batch of the epoch when it changes per batch.
  void before_batch();

 private:
  const TrainConfig& config_;
  double base_lr_;
  int64_t epochs_, batches_per_epoch_;
  std::function<void(double)> set_lr_;
  int64_t epoch_ = 0, batch_ = 0;
};

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

}  // namespace neuroflux
