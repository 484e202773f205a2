#include "neuroflux/optim/optim.h"

#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include <cmath>

#include "neuroflux/optim/parameterwise_optimizer.h"

namespace neuroflux {

std::unique_ptr<torch::optim::Optimizer> make_optimizer(std::vector<at::Tensor> parameters,
                                                        const TrainConfig& train,
                                                        const MemoryConfig& memory, double lr) {
  ParameterwiseOptions how;
  how.host_state = memory.optimizer_state == "host";
  how.fused = train.fused_update;
  // The defaults keep torch's own optimizers, so runs without the options stay bit-identical.
  const bool own = how.host_state || how.fused;
  if (train.optimizer == "adam") {
    const auto options = torch::optim::AdamOptions(lr).weight_decay(train.weight_decay);
    if (own) return std::make_unique<ParameterwiseOptimizer>(std::move(parameters), options, how);
    return std::make_unique<torch::optim::Adam>(std::move(parameters), options);
  }
  const auto options = torch::optim::SGDOptions(lr)
                           .momentum(train.momentum)
                           .weight_decay(train.weight_decay)
                           .nesterov(train.momentum > 0);
  if (own) return std::make_unique<ParameterwiseOptimizer>(std::move(parameters), options, how);
  return std::make_unique<torch::optim::SGD>(std::move(parameters), options);
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

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

}  // namespace neuroflux
