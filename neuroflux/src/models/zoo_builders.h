// Private to the model zoo: the per-family builders behind build_model and the helpers they
// share. A builder returns only the units and the channel count of the last one; model_zoo.cpp
// adds the common classifier, initialises the weights and wraps the result in a UnitChain.
#pragma once

#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>

#include <cstdint>
#include <string>
#include <vector>

#include "neuroflux/config/config.h"
#include "neuroflux/rowcentric/row_centric.h"

namespace neuroflux {
namespace zoo {

struct Units {
  std::vector<torch::nn::Sequential> units;
  int64_t out_channels = 0;
};

/// What every builder is given, already validated.
struct BuildArgs {
  ModelConfig config;
  int64_t in_channels = 0;
  int64_t height = 0;
  int64_t width = 0;  ///< the input's width in pixels (config.width is the channel multiplier)
};

Units build_vgg(const BuildArgs& args);
Units build_resnet(const BuildArgs& args);
Units build_mobilenetv2(const BuildArgs& args);
Units build_simplecnn(const BuildArgs& args);

/// Rewrites `units` (plain Conv2d / BatchNorm2d / ReLU / MaxPool2d stacks) to keep post-ReLU
/// activations bitmap-packed for backward; a ConfigError naming /model/activations for any
/// other layer (ResNet's and MobileNetV2's blocks).
void use_bitmap_activations(std::vector<torch::nn::Sequential>& units, const std::string& model);

/// model.row_centric: checks that the model can run row-centric (vgg*, resnet*, simplecnn, all
/// without batch norm; not with bitmap activations), each a ConfigError naming
/// /model/row_centric, and hands the options to ResNet's basic blocks. The plain conv-stack
/// units are run row-centric by UnitChain::set_row_centric with the options returned. For
/// stripes = "auto" the options take the free bytes from the device's MemoryMeter: its limit
/// (memory.budget) less its live bytes at each forward call.
rowcentric::RowCentricOptions use_row_centric(std::vector<torch::nn::Sequential>& units,
                                              const ModelConfig& config);

/// Channels of a layer with `channels` at width 1: rounded to nearest, at least 4, so a very
/// thin model still has a few filters per layer.
int64_t scaled_channels(int64_t channels, double width);

/// MobileNet's channel rule: `value` rounded to the nearest multiple of `divisor`, at least
/// `min_value`, never more than 10% below `value` (torchvision's _make_divisible).
int64_t make_divisible(double value, int64_t divisor = 8, int64_t min_value = 8);

/// conv k x k, padding k/2 (same size at stride 1).
torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride, bool bias);

/// Appends a 2x2 max-pool to `unit` and halves (height, width), except along a side already 1
/// pixel wide; when both are, nothing is appended. Keeps the deep VGGs valid on 28x28 inputs,
/// where five pools would otherwise reach a 0-pixel map (28 -> 14 -> 7 -> 3 -> 1 -> skip).
void append_pool(torch::nn::Sequential& unit, int64_t& height, int64_t& width);

/// Spatial size after a 3x3 conv with padding 1 and `stride`.
inline int64_t conv3x3_out(int64_t size, int64_t stride) { return (size - 1) / stride + 1; }

}  // namespace zoo
}  // namespace neuroflux
