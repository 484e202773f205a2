#include "neuroflux/optim/optim.h"

#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include <cmath>

namespace neuroflux {

std::unique_ptr<torch::optim::Optimizer> make_optimizer(std::vector<at::Tensor> parameters,
                                                        const TrainConfig& config, double lr) {
  if (config.optimizer == "adam") {
    return std::make_unique<torch::optim::Adam>(
        std::move(parameters), torch::optim::AdamOptions(lr).weight_decay(config.weight_decay));
  }
  return std::make_unique<torch::optim::SGD>(std::move(parameters),
                                             torch::optim::SGDOptions(lr)
                                                 .momentum(config.momentum)
                                                 .weight_decay(config.weight_decay)
                                                 .nesterov(config.momentum > 0));
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
