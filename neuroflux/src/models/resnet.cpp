#include <torch/torch.h>

#include "models/blocks.h"
#include "models/zoo_builders.h"

namespace neuroflux {
namespace zoo {

Units build_resnet(const BuildArgs& args) {
  // Blocks per stage (He et al. 2016, Table 1); the stages have 64, 128, 256, 512 channels.
  const std::vector<int64_t> blocks = args.config.name == "resnet18"
                                          ? std::vector<int64_t>{2, 2, 2, 2}
                                          : std::vector<int64_t>{3, 4, 6, 3};
  const std::vector<int64_t> stage_channels{64, 128, 256, 512};
  const std::vector<int64_t> stage_strides{1, 2, 2, 2};
  const bool bn = args.config.batch_norm;
  const double w = args.config.width;

  Units result;
  // CIFAR-style stem: one stride-1 3x3 conv, no 7x7 conv or max-pool, which would shrink a
  // 32x32 input to 8x8 before the first block.
  int64_t channels = scaled_channels(64, w);
  torch::nn::Sequential stem(conv(args.in_channels, channels, 3, 1, /*bias=*/!bn));
  if (bn) stem->push_back(torch::nn::BatchNorm2d(channels));
  stem->push_back(torch::nn::ReLU());
  result.units.push_back(stem);

  for (size_t stage = 0; stage < blocks.size(); ++stage) {
    const int64_t out = scaled_channels(stage_channels[stage], w);
    for (int64_t b = 0; b < blocks[stage]; ++b) {
      // Only a stage's first block downsamples.
      const int64_t stride = b == 0 ? stage_strides[stage] : 1;
      result.units.push_back(torch::nn::Sequential(
          BasicBlock(BasicBlockOptions(channels, out).stride(stride).batch_norm(bn))));
      channels = out;
    }
  }
  result.out_channels = channels;
  return result;
}

}  // namespace zoo
}  // namespace neuroflux
