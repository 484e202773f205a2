// One local-learning step of one unit: forward the unit and its head, back-propagate the head's
// loss into the unit only (the input is detached), step the unit's optimizer. The profiler
// measures exactly this, so the planner predicts what the block trainer does.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/optim/optimizer.h>

#include "neuroflux/local/local_loss.h"

#include <string>
#include <vector>

namespace neuroflux {

class GradReducer;

/// How a unit's forward runs inside its training step. The planner picks one per unit (Plan):
/// plain; "recompute": the unit as one checkpointed segment, only its input kept and the unit
/// re-run in the backward pass, so its maps and the head's are never alive together;
/// "row_centric": stripe by stripe (8 overlapping bands), for units that are plain conv stacks;
/// "im2col": each conv as im2col + one matrix product (local/im2col_unit.h), whose backward
/// holds one weight-sized gradient where ATen's holds two, for flat conv units (vgg's).
enum class UnitMode { kPlain, kRecompute, kRowCentric, kIm2col };
std::string to_string(UnitMode mode);
/// Throws std::invalid_argument naming the known modes.
UnitMode unit_mode_from_string(const std::string& name);
/// The modes `unit` can run in (row-centric only for conv / ReLU / pool stacks, im2col only
/// for flat units whose convs are direct children).
std::vector<UnitMode> unit_modes_for(const torch::nn::Sequential& unit);

/// The unit's forward in `mode`, recording for backward.
at::Tensor unit_forward(torch::nn::Sequential& unit, const at::Tensor& input, UnitMode mode);

struct UnitStepResult {
  at::Tensor output;    ///< the unit's output, detached: the next unit's input
  at::Tensor loss;      ///< 0-dim, detached
  at::Tensor correct;   ///< 0-dim count of correct predictions of the head
};

/// With a `reducer` (data parallel), the gradients are averaged over the ranks before the step.
/// `terms` (local/local_loss.h) adds the unit's information-keeping terms to the head's loss;
/// its decoder's parameters must be in `optimizer`.
UnitStepResult unit_step(torch::nn::Sequential& unit, torch::nn::Sequential& head,
                         torch::optim::Optimizer& optimizer, const at::Tensor& input,
                         const at::Tensor& labels, GradReducer* reducer = nullptr,
                         UnitMode mode = UnitMode::kPlain, UnitLossTerms* terms = nullptr);

}  // namespace neuroflux
