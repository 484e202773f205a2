// Auxiliary heads: the small classifier each unit learns from in local learning. Two families:
//
//   conv  [AvgPool(p), where the map is large] -> conv3x3(C -> F) + BN + ReLU
//         -> AdaptiveAvgPool(1) -> Linear(F -> classes)
//   deep  AdaptiveAvgPool(s x s, s = min(4, map side)) -> 2 x [conv1x1 + BN + ReLU] (width F)
//         -> Linear(F s^2 -> F) + ReLU -> Linear(F -> classes)
//
//   copies  fresh copies of the next `depth` units of the network itself (new weights, the same
//         residual / inverted-residual / conv blocks) -> AdaptiveAvgPool(1) -> Linear(-> classes)
//
// The copies family follows AugLocal (Ma et al., ICLR 2024): a head made of the layers that will
// consume the unit's output pushes the unit towards features the rest of the network can use,
// not towards features a small classifier can separate at once. Its depth falls linearly from
// the first unit to the last (copies_head_specs), since a deep unit has little network left to
// stand in for; at depth 0 it is a plain pool + linear head.
//
// The deep family follows DGL's heads (Belilovsky et al., ICML 2020): pooling to a few pixels
// instead of one keeps where in the map a feature fired, and the extra non-linear layers let the
// head separate classes without forcing the unit itself to become linearly separable, which is
// what costs greedy local learning its accuracy on deep networks.
//
// The pre-pool p and width F decide what a head costs. A head at full resolution with a wide conv
// can cost as much compute as its unit (a prototype measured +43-90% on VGG-11 / Fashion-MNIST),
// which by itself erases the gain of not back-propagating through earlier blocks; the adaptive
// rule (choose_adaptive_head) keeps each head within a fraction of its unit's memory and compute.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <torch/nn/modules/container/sequential.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "neuroflux/models/unit_chain.h"

namespace neuroflux {

struct AuxHeadSpec {
  int64_t pool = 1;     ///< average-pool kernel and stride before the conv (1 = none)
  int64_t width = 64;   ///< F, the conv's output channels
  bool classifier = false;  ///< the chain's own classifier (the last unit's head), not an AuxHead
  /// Batch norm after the conv, as in the model (model.batch_norm): a model trained without it
  /// (row-centric stacks, data parallel that must equal one process) gets heads without it too.
  bool batch_norm = true;
  std::string family = "conv";  ///< conv | deep | copies (see above); `pool`: conv only
  int64_t depth = 0;            ///< copies: how many of the following units the head copies

  nlohmann::json to_json() const;
  static AuxHeadSpec from_json(const nlohmann::json& json);
  bool operator==(const AuxHeadSpec& o) const {
    return pool == o.pool && width == o.width && classifier == o.classifier &&
           batch_norm == o.batch_norm && family == o.family && depth == o.depth;
  }
};

/// The head as a Sequential, for a unit output of per-sample shape (C, H, W). A copies head
/// clones the first spec.depth of `following` (the units after the head's unit, as
/// following_units gives them) and initialises the clones afresh.
torch::nn::Sequential make_aux_head(const std::vector<int64_t>& input_shape,
                                    const AuxHeadSpec& spec, int64_t num_classes,
                                    const std::vector<torch::nn::Sequential>& following = {});

/// The units after chain unit `unit`, as the zoo built them: a grouped chain's modules
/// (models/unit_groups.h) are split back into their units, so a copies head's depth counts
/// the network's own blocks whatever the grouping.
std::vector<torch::nn::Sequential> following_units(UnitChainImpl& chain, int64_t unit);

/// Copies heads for every unit of `chain` but the last (the classifier's). Unit i of n copies
///   depth_i = min(L_i, round(D (n - 1 - i) / (n - 1)))
/// of the L_i units after it, D = L_0 (every following unit at the first unit) or `max_depth`
/// when that is smaller and positive: the depth falls linearly to 0 or 1 at unit n - 2.
std::vector<AuxHeadSpec> copies_head_specs(UnitChainImpl& chain, int64_t max_depth);

/// Activation bytes per sample a head keeps for its backward pass (float32). conv: the conv's
/// pooled input, and the conv, BN and ReLU outputs: 4 * (C + 3F) * h * w. deep: the pooled
/// input, three maps per 1x1 layer and the MLP's hidden layer: 4 * ((C + 6F) * s^2 + 2F).
/// copies: the input map only (4 * C * H * W); the copied units' maps depend on their layers
/// and are measured by the profiler with the unit's step, like the unit's own.
double aux_head_activation_bytes(const std::vector<int64_t>& input_shape, const AuxHeadSpec& spec);

/// What the adaptive rule knows of a unit: its output shape and its measured training cost.
struct UnitCost {
  std::vector<int64_t> output_shape;
  double activation_bytes_per_sample = 0;   ///< measured (slope of the step's peak in batch)
  double seconds_per_sample = 0;            ///< measured forward + backward
};

/// The adaptive rule. For pre-pool p = 1, 2, 4, ... (while the map is larger than 1 pixel):
///   F_mem  = largest F with aux_head_activation_bytes <= memory_fraction * unit bytes
///   F_comp = 64 * compute_fraction * unit seconds / head seconds at (p, F = 64)
/// and the first p whose min(F_mem, F_comp) reaches 16 wins, F clamped to [16, 256]: pooling is
/// used only where the map is too large for a useful head otherwise. If no p does, the coarsest
/// p with F = 16 is taken (the floor below which a head stops being a useful classifier).
/// `head_seconds(spec)` measures a head's forward + backward seconds per sample.
AuxHeadSpec choose_adaptive_head(const UnitCost& unit, double memory_fraction,
                                 double compute_fraction,
                                 const std::function<double(const AuxHeadSpec&)>& head_seconds);

}  // namespace neuroflux
