#include <torch/torch.h>

#include "models/blocks.h"
#include "models/zoo_builders.h"

#include <algorithm>

namespace neuroflux {
namespace zoo {

namespace {

struct StageSpec {
  int64_t expand_ratio;  // t
  int64_t channels;      // c
  int64_t repeats;       // n
  int64_t stride;        // s, of the stage's first block
};

// Sandler et al. (2018), Table 2.
const std::vector<StageSpec> kStages = {
    {1, 16, 1, 1},  {6, 24, 2, 2},  {6, 32, 3, 2},  {6, 64, 4, 2},
    {6, 96, 3, 1},  {6, 160, 3, 2}, {6, 320, 1, 1},
};

// Inputs up to this side length count as "small" (CIFAR, Fashion-MNIST): the ImageNet strides
// would reduce 32x32 to 1x1, so the stem and the second stage keep stride 1 (the usual CIFAR
// adaptation), for 3 downsamplings in all: 32 -> 4, 28 -> 4.
constexpr int64_t kSmallInput = 64;

}  // namespace

Units build_mobilenetv2(const BuildArgs& args) {
  const bool bn = args.config.batch_norm;
  const double w = args.config.width;
  const bool small = std::min(args.height, args.width) <= kSmallInput;

  Units result;
  int64_t channels = make_divisible(32 * w);
  torch::nn::Sequential stem(conv(args.in_channels, channels, 3, small ? 1 : 2, /*bias=*/!bn));
  if (bn) stem->push_back(torch::nn::BatchNorm2d(channels));
  stem->push_back(torch::nn::ReLU6());
  result.units.push_back(stem);

  for (size_t s = 0; s < kStages.size(); ++s) {
    const StageSpec& spec = kStages[s];
    const int64_t out = make_divisible(spec.channels * w);
    const int64_t stage_stride = (small && s == 1) ? 1 : spec.stride;
    for (int64_t i = 0; i < spec.repeats; ++i) {
      const int64_t stride = i == 0 ? stage_stride : 1;
      result.units.push_back(torch::nn::Sequential(InvertedResidual(
          InvertedResidualOptions(channels, out)
              .stride(stride)
              .expand_ratio(spec.expand_ratio)
              .batch_norm(bn))));
      channels = out;
    }
  }

  // The last conv only widens (never narrows) with the multiplier, as in the paper: a thin
  // network keeps 1280 features for its classifier.
  const int64_t last = make_divisible(1280 * std::max(1.0, w));
  torch::nn::Sequential head(conv(channels, last, 1, 1, /*bias=*/!bn));
  if (bn) head->push_back(torch::nn::BatchNorm2d(last));
  head->push_back(torch::nn::ReLU6());
  result.units.push_back(head);
  result.out_channels = last;
  return result;
}

}  // namespace zoo
}  // namespace neuroflux
