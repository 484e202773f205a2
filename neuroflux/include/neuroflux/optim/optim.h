// Optimizers and learning-rate schedules from TrainConfig.
#pragma once

#include <torch/optim/optimizer.h>

#include <memory>
#include <vector>

#include "neuroflux/config/config.h"

namespace neuroflux {

/// SGD (momentum, weight decay) or Adam over `parameters`, at `lr` (the scheduled rate is set
/// per epoch with set_learning_rate).
std::unique_ptr<torch::optim::Optimizer> make_optimizer(std::vector<at::Tensor> parameters,
                                                        const TrainConfig& config, double lr);

/// The rate for 0-based `epoch` of `epochs`: cosine from `base_lr` towards 0, step decay by
/// `gamma` every `step_size` epochs, or constant.
double scheduled_lr(const TrainConfig& config, double base_lr, int64_t epoch, int64_t epochs);

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

}  // namespace neuroflux
