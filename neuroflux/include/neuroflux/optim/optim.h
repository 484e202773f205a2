// Optimizers and learning-rate schedules from TrainConfig.
#pragma once

#include <torch/optim/optimizer.h>

#include <memory>
#include <vector>

#include "neuroflux/config/config.h"
#include "neuroflux/util/errors.h"

namespace neuroflux {

/// SGD (Nesterov momentum, weight decay) or Adam over `parameters`, at `lr` (the scheduled rate
/// is set per epoch with set_learning_rate). With memory.optimizer_state "device" and
/// train.fused_update false (the defaults) these are torch::optim::SGD / Adam themselves;
/// otherwise a ParameterwiseOptimizer (optim/parameterwise_optimizer.h) with the same arithmetic,
/// its state on the host and/or its updates fused into backward.
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

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

}  // namespace neuroflux
