// One local-learning step of one unit: forward the unit and its head, back-propagate the head's
// loss into the unit only (the input is detached), step the unit's optimizer. The profiler
// measures exactly this, so the planner predicts what the block trainer does.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/optim/optimizer.h>

namespace neuroflux {

class GradReducer;

struct UnitStepResult {
  at::Tensor output;    ///< the unit's output, detached: the next unit's input
  at::Tensor loss;      ///< 0-dim, detached
  at::Tensor correct;   ///< 0-dim count of correct predictions of the head
};

/// With a `reducer` (data parallel), the gradients are averaged over the ranks before the step.
UnitStepResult unit_step(torch::nn::Sequential& unit, torch::nn::Sequential& head,
                         torch::optim::Optimizer& optimizer, const at::Tensor& input,
                         const at::Tensor& labels, GradReducer* reducer = nullptr);

}  // namespace neuroflux
