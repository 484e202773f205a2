#include <torch/torch.h>

#include "models/zoo_builders.h"

#include <map>

namespace neuroflux {
namespace zoo {

namespace {

constexpr int64_t kPool = 0;  // "M" in the VGG paper's tables

// Configurations A, D and E of Simonyan & Zisserman (2015), Table 1.
const std::map<std::string, std::vector<int64_t>>& vgg_configs() {
  static const std::map<std::string, std::vector<int64_t>> configs = {
      {"vgg11", {64, kPool, 128, kPool, 256, 256, kPool, 512, 512, kPool, 512, 512, kPool}},
      {"vgg16",
       {64, 64, kPool, 128, 128, kPool, 256, 256, 256, kPool, 512, 512, 512, kPool, 512, 512, 512,
        kPool}},
      {"vgg19",
       {64, 64, kPool, 128, 128, kPool, 256, 256, 256, 256, kPool, 512, 512, 512, 512, kPool, 512,
        512, 512, 512, kPool}},
  };
  return configs;
}

}  // namespace

Units build_vgg(const BuildArgs& args) {
  const auto& cfg = vgg_configs().at(args.config.name);
  const bool bn = args.config.batch_norm;
  Units result;
  int64_t channels = args.in_channels;
  int64_t height = args.height;
  int64_t width = args.width;
  for (int64_t entry : cfg) {
    if (entry == kPool) {
      // A pool belongs to the unit of the conv before it: the unit's output is then the smaller
      // map, which is what its auxiliary head and the activation cache see.
      append_pool(result.units.back(), height, width);
      continue;
    }
    const int64_t out = scaled_channels(entry, args.config.width);
    // Convs keep their bias with BN as well, as torchvision's vgg*_bn do, so parameter counts
    // match the reference models.
    torch::nn::Sequential unit(conv(channels, out, 3, 1, /*bias=*/true));
    if (bn) unit->push_back(torch::nn::BatchNorm2d(out));
    unit->push_back(torch::nn::ReLU());
    result.units.push_back(unit);
    channels = out;
  }
  result.out_channels = channels;
  return result;
}

}  // namespace zoo
}  // namespace neuroflux
