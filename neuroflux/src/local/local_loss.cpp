#include "neuroflux/local/local_loss.h"

#include <torch/torch.h>

#include <algorithm>

#include "neuroflux/config/config.h"

namespace neuroflux {

namespace nn = torch::nn;

LocalLossSpec local_loss_spec(const Config& config) {
  const std::string& kind = config.neuroflux.local_loss;
  LocalLossSpec spec;
  if (kind.find("sim") != std::string::npos) spec.sim_weight = config.neuroflux.sim_weight;
  if (kind.find("recon") != std::string::npos) spec.recon_weight = config.neuroflux.recon_weight;
  return spec;
}

double depth_faded_weight(double weight, int64_t unit, int64_t units) {
  if (units <= 1) return 0.0;
  return weight * static_cast<double>(units - 1 - unit) / static_cast<double>(units - 1);
}

nn::Sequential make_decoder(const std::vector<int64_t>& output_shape,
                            const std::vector<int64_t>& input_shape) {
  TORCH_CHECK(output_shape.size() == 3 && input_shape.size() == 3,
              "decoder: expected (C, H, W) shapes");
  nn::Sequential decoder;
  // Batch norm after the conv, as in the heads: it makes the conv's weights scale-free. Without
  // it a conv on a post-ReLU map (all positive, strongly correlated) sees a curvature large
  // enough that SGD at a classifier's learning rate diverges (measured: lr 0.05, momentum 0.9
  // reached inf in 7 steps on simplecnn's unit 0, and NaN within an epoch on resnet18).
  decoder->push_back(
      nn::Conv2d(nn::Conv2dOptions(output_shape[0], input_shape[0], 3).padding(1).bias(false)));
  decoder->push_back(nn::BatchNorm2d(input_shape[0]));
  if (output_shape[1] != input_shape[1] || output_shape[2] != input_shape[2])
    decoder->push_back(nn::Upsample(nn::UpsampleOptions()
                                        .size(std::vector<int64_t>{input_shape[1], input_shape[2]})
                                        .mode(torch::kBilinear)
                                        .align_corners(false)));
  return decoder;
}

at::Tensor similarity_matching_loss(const at::Tensor& features, const at::Tensor& labels) {
  at::Tensor f = features;
  if (f.dim() == 4) {
    const int64_t side_h = std::min<int64_t>(4, f.size(2)), side_w = std::min<int64_t>(4, f.size(3));
    f = torch::adaptive_avg_pool2d(f, {side_h, side_w});
  }
  f = f.flatten(1);
  f = f - f.mean(1, /*keepdim=*/true);
  f = f / f.norm(2, {1}, /*keepdim=*/true).clamp_min(1e-8);
  const at::Tensor feature_similarity = f.matmul(f.t());
  const at::Tensor label_similarity = labels.unsqueeze(1).eq(labels.unsqueeze(0)).to(f.dtype());
  return torch::mse_loss(feature_similarity, label_similarity);
}

at::Tensor reconstruction_loss(nn::Sequential& decoder, const at::Tensor& output,
                               const at::Tensor& input) {
  // Relative to the target's variance: a later unit's input is an unnormalised map that grows
  // while the unit before it trains in the same block, and a plain squared error grows with it
  // until the step diverges (measured: NaN within one epoch on resnet18 at lr 0.2).
  const at::Tensor target = input.detach();
  return torch::mse_loss(decoder->forward(output), target) / (target.var() + 1e-6);
}

at::Tensor local_loss(const at::Tensor& logits, const at::Tensor& labels, const at::Tensor& input,
                      const at::Tensor& output, UnitLossTerms& terms) {
  at::Tensor loss = torch::cross_entropy_loss(logits, labels);
  if (terms.sim_weight > 0) loss = loss + terms.sim_weight * similarity_matching_loss(output, labels);
  if (terms.recon_weight > 0 && terms.decoder)
    loss = loss + terms.recon_weight * reconstruction_loss(terms.decoder, output, input);
  return loss;
}

}  // namespace neuroflux
