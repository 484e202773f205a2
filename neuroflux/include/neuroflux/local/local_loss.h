// What a unit learns from besides its head's cross-entropy (neuroflux.local_loss). A greedy
// classification loss pushes every unit to make classes separable at once, and an early unit that
// does so throws away what later units would have needed; two cheap terms keep information:
//
//   sim    similarity matching (PredSim, Nokland & Eidnes, ICML 2019): the cosine similarity of
//          the samples' pooled, centred features, pair by pair, is matched by mean squared error
//          to the labels' similarity (1 for the same class, 0 otherwise).
//   recon  reconstruction (InfoPro, Wang et al., ICLR 2021): a small decoder (conv3x3 to the
//          input's channels, batch norm, bilinear upsampling to its size) rebuilds the unit's
//          input from its output; mean squared error over the input's variance (scale-free: a
//          later unit's input is a map whose scale drifts while it trains). For the first unit
//          the input is the image itself; later
//          units rebuild the previous unit's output, which is all a block trained from a cache
//          sees, so information is kept link by link rather than against the image directly.
//
// Both fade with depth: unit i of n gets weight w (n - 1 - i) / (n - 1), so the first unit
// weighs them fully and the last unit, the network's classifier, learns from cross-entropy
// alone. The decoders are training aids: the exported model carries none.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/modules/container/sequential.h>

#include <cstdint>
#include <string>
#include <vector>

namespace neuroflux {

struct Config;

/// The run's choice: which terms, and their weights at the first unit.
struct LocalLossSpec {
  double sim_weight = 0;
  double recon_weight = 0;
  bool any() const { return sim_weight > 0 || recon_weight > 0; }
};

/// From neuroflux.local_loss ("ce", "ce+sim", "ce+recon", "ce+sim+recon") and the weights
/// neuroflux.sim_weight and neuroflux.recon_weight.
LocalLossSpec local_loss_spec(const Config& config);

/// One unit's share: its depth-faded weights and, with a reconstruction term, its decoder.
struct UnitLossTerms {
  double sim_weight = 0;
  double recon_weight = 0;
  torch::nn::Sequential decoder{nullptr};
};

/// w (units - 1 - unit) / (units - 1); 0 for a single unit.
double depth_faded_weight(double weight, int64_t unit, int64_t units);

/// The decoder from a unit output of per-sample shape `output_shape` to `input_shape`.
torch::nn::Sequential make_decoder(const std::vector<int64_t>& output_shape,
                                   const std::vector<int64_t>& input_shape);

/// Mean squared error between the features' and the labels' similarity matrices. `features` is
/// (B, ...): pooled to at most 4 x 4 pixels when it is a map, flattened, centred per sample and
/// scaled to unit length.
at::Tensor similarity_matching_loss(const at::Tensor& features, const at::Tensor& labels);

/// Mean squared error between decoder(output) and `input` (a target, not differentiated),
/// divided by the variance of `input`.
at::Tensor reconstruction_loss(torch::nn::Sequential& decoder, const at::Tensor& output,
                               const at::Tensor& input);

/// Cross-entropy of `logits` plus the unit's weighted terms.
at::Tensor local_loss(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& input,
                      const at::Tensor& output, UnitLossTerms& terms);

}  // namespace neuroflux
