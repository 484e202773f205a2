#include "neuroflux/optim/optim.h"

#include <algorithm>
#include <cmath>

#include "neuroflux/optim/parameterwise_optimizer.h"

namespace neuroflux {

std::unique_ptr<torch::optim::Optimizer> make_optimizer(std::vector<at::Tensor> parameters,
                                                        const TrainConfig& train,
                                                        const MemoryConfig& memory, double lr) {
  ParameterwiseOptions how;
  how.host_state = memory.optimizer_state == "host";
  how.fused = train.fused_update;
  // Always our own: the same arithmetic as torch::optim::SGD / Adam (bitwise, tested), but its
  // sums are formed in place, so a step holds at most one weight-sized temporary instead of two,
  // and none when fused.
  if (train.optimizer == "adam") {
    const auto options = torch::optim::AdamOptions(lr).weight_decay(train.weight_decay);
    return std::make_unique<ParameterwiseOptimizer>(std::move(parameters), options, how);
  }
  const auto options = torch::optim::SGDOptions(lr)
                           .momentum(train.momentum)
                           .weight_decay(train.weight_decay)
                           .nesterov(train.momentum > 0);
  return std::make_unique<ParameterwiseOptimizer>(std::move(parameters), options, how);
}

bool updates_in_backward(const torch::optim::Optimizer& optimizer) {
  const auto* own = dynamic_cast<const ParameterwiseOptimizer*>(&optimizer);
  return own != nullptr && own->fused();
}

ConfigError fused_update_data_parallel_error() {
  return ConfigError(
      "/train/fused_update: not with data-parallel ranks (distributed.mode \"data\"): each "
      "weight is updated during backward, before the gradients are averaged across the ranks; "
      "use one rank, distributed.mode \"pipeline\" (local, neuroflux), or fused_update false");
}

double scheduled_lr(const TrainConfig& config, double base_lr, int64_t epoch, int64_t epochs) {
  if (config.schedule == "constant" || epochs <= 1) return base_lr;
  if (config.schedule == "step") {
    const int64_t step = config.step_size > 0 ? config.step_size : std::max<int64_t>(1, epochs / 3);
    return base_lr * std::pow(config.gamma, static_cast<double>(epoch / step));
  }
  // Cosine over the epochs, evaluated at the epoch's start, never reaching exactly 0.
  const double pi = std::acos(-1.0);
  return base_lr * 0.5 * (1.0 + std::cos(pi * static_cast<double>(epoch) / epochs));
}

double warmup_epochs_for(const TrainConfig& config, int64_t epochs) {
  return std::min(config.warmup_epochs, 0.5 * static_cast<double>(epochs));
}

double scheduled_lr(const TrainConfig& config, double base_lr, int64_t epoch, int64_t epochs,
                    int64_t batch, int64_t batches_per_epoch) {
  const double warmup = warmup_epochs_for(config, epochs);
  if (warmup <= 0) return scheduled_lr(config, base_lr, epoch, epochs);
  const double per_epoch = static_cast<double>(std::max<int64_t>(1, batches_per_epoch));
  const double t = static_cast<double>(epoch) + static_cast<double>(batch) / per_epoch;
  if (t < warmup) return base_lr * std::min(1.0, (t + 1.0 / per_epoch) / warmup);
  if (config.schedule != "cosine") return scheduled_lr(config, base_lr, epoch, epochs);
  const double pi = std::acos(-1.0);
  const double progress = (t - warmup) / (static_cast<double>(epochs) - warmup);
  return base_lr * 0.5 * (1.0 + std::cos(pi * progress));
}

BatchLrSchedule::BatchLrSchedule(const TrainConfig& config, double base_lr, int64_t epochs,
                                 int64_t samples, int64_t batch_size,
                                 std::function<void(double)> set_lr)
    : config_(config),
      base_lr_(base_lr),
      epochs_(epochs),
      batches_per_epoch_(std::max<int64_t>(1, (samples + batch_size - 1) / batch_size)),
      set_lr_(std::move(set_lr)) {}

double BatchLrSchedule::start_epoch(int64_t epoch) {
  epoch_ = epoch;
  batch_ = 0;
  const double lr = scheduled_lr(config_, base_lr_, epoch_, epochs_, 0, batches_per_epoch_);
  set_lr_(lr);
  return lr;
}

void BatchLrSchedule::before_batch() {
  // Without warm-up the epoch's rate was set once at its start, as before warm-up existed.
  if (warmup_epochs_for(config_, epochs_) > 0)
    set_lr_(scheduled_lr(config_, base_lr_, epoch_, epochs_, batch_, batches_per_epoch_));
  ++batch_;
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

}  // namespace neuroflux
