// The model zoo: every network built as a UnitChain, adapted to small inputs (28x28, 32x32).
#pragma once

#include <torch/nn/modules/container/sequential.h>

#include <cstdint>
#include <string>
#include <vector>

#include "neuroflux/config/config.h"
#include "neuroflux/models/unit_chain.h"

namespace neuroflux {

/// Builds `config.name` for per-sample input (channels, height, width) and `num_classes`.
/// vgg11/16/19: one unit per conv (+BN) +ReLU, with the following max-pool folded in; pools are
/// skipped once the map is 1 pixel. resnet18/34: a stem unit then one unit per basic block.
/// mobilenetv2: a stem unit, one unit per inverted-residual block, the final 1x1 conv a unit.
/// simplecnn: a small 4-unit net for quick runs. Unknown names are ConfigErrors naming
/// /model/name and the known names.
UnitChain build_model(const ModelConfig& config, std::vector<int64_t> input_shape,
                      int64_t num_classes);

/// A chain from a user's Sequential: each child a unit. `classifier` maps the last child's
/// output to logits; when empty, the last child is taken as the classifier.
UnitChain chain_from_sequential(torch::nn::Sequential network, std::vector<int64_t> input_shape,
                                int64_t num_classes,
                                torch::nn::Sequential classifier = nullptr);

/// The zoo's initialisation (He fan-out convs, identity batch norm, near-zero linear layers),
/// for modules built outside build_model that must start as its units do.
void init_weights(torch::nn::Module& module);

/// Names build_model accepts.
std::vector<std::string> model_names();

}  // namespace neuroflux
