#include <torch/torch.h>

#include "models/zoo_builders.h"

namespace neuroflux {
namespace zoo {

Units build_simplecnn(const BuildArgs& args) {
  struct Layer {
    int64_t channels;
    bool pool;
  };
  // Small enough to train an epoch of Fashion-MNIST on a CPU in seconds, deep enough (4 units)
  // for block planning and early exit to have choices.
  const Layer layers[] = {{32, true}, {64, true}, {128, false}, {128, true}};
  const bool bn = args.config.batch_norm;
  Units result;
  int64_t channels = args.in_channels;
  int64_t height = args.height;
  int64_t width = args.width;
  for (const Layer& layer : layers) {
    const int64_t out = scaled_channels(layer.channels, args.config.width);
    torch::nn::Sequential unit(conv(channels, out, 3, 1, /*bias=*/!bn));
    if (bn) unit->push_back(torch::nn::BatchNorm2d(out));
    unit->push_back(torch::nn::ReLU());
    if (layer.pool) append_pool(unit, height, width);
    result.units.push_back(unit);
    channels = out;
  }
  result.out_channels = channels;
  return result;
}

}  // namespace zoo
}  // namespace neuroflux
