// Building blocks of the zoo's networks that are more than a plain Sequential: ResNet's basic
// block and MobileNetV2's inverted residual. Private to the library, but other stages (profiler,
// trainers, techniques that rewrite layers) may include it to recognise or run these blocks.
//
// Both are Cloneable so a unit that holds them can still be deep-copied with Sequential::clone().
// Their activations are registered ReLU / ReLU6 modules rather than functional calls, so code that
// walks a unit's modules sees every layer that saves an activation.
#pragma once

#include <torch/nn/cloneable.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>

#include <cstdint>
#include <optional>

#include "neuroflux/rowcentric/row_centric.h"

namespace neuroflux {

/// ResNet's basic block: conv3x3(stride) [+BN] + ReLU, conv3x3 [+BN], plus the shortcut, then
/// ReLU. The shortcut is a 1x1 conv(stride) [+BN] when the shape changes, identity otherwise.
/// Without batch norm every conv carries a bias (with it the BN shift makes a bias redundant).
struct BasicBlockOptions {
  BasicBlockOptions(int64_t in_channels, int64_t out_channels)
      : in_channels_(in_channels), out_channels_(out_channels) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, out_channels);
  TORCH_ARG(int64_t, stride) = 1;
  TORCH_ARG(bool, batch_norm) = true;
};

class BasicBlockImpl : public torch::nn::Cloneable<BasicBlockImpl> {
 public:
  explicit BasicBlockImpl(BasicBlockOptions options);
  void reset() override;
  at::Tensor forward(const at::Tensor& x);
  /// True when the shortcut is a projection (1x1 conv) rather than the identity.
  bool has_projection() const { return !shortcut.is_empty(); }

  BasicBlockOptions options;
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};  ///< null without batch norm
  torch::nn::ReLU relu1{nullptr}, relu2{nullptr};
  torch::nn::Sequential shortcut{nullptr};            ///< null for the identity shortcut
  /// When set (model.row_centric, no batch norm), the main path conv1 - ReLU - conv2 runs as a
  /// row-centric stack, so conv1's output is never kept whole.
  std::optional<rowcentric::RowCentricOptions> row_centric;
};
TORCH_MODULE(BasicBlock);

/// MobileNetV2's inverted residual: 1x1 expand [+BN] + ReLU6 (left out when the expansion is 1),
/// 3x3 depthwise(stride) [+BN] + ReLU6, 1x1 linear projection [+BN]; the input is added back
/// when stride is 1 and the channel count is unchanged.
struct InvertedResidualOptions {
  InvertedResidualOptions(int64_t in_channels, int64_t out_channels)
      : in_channels_(in_channels), out_channels_(out_channels) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, out_channels);
  TORCH_ARG(int64_t, stride) = 1;
  TORCH_ARG(int64_t, expand_ratio) = 6;
  TORCH_ARG(bool, batch_norm) = true;
};

class InvertedResidualImpl : public torch::nn::Cloneable<InvertedResidualImpl> {
 public:
  explicit InvertedResidualImpl(InvertedResidualOptions options);
  void reset() override;
  at::Tensor forward(const at::Tensor& x);
  bool uses_residual() const {
    return options.stride() == 1 && options.in_channels() == options.out_channels();
  }
  int64_t hidden_channels() const { return options.in_channels() * options.expand_ratio(); }

  InvertedResidualOptions options;
  torch::nn::Sequential body{nullptr};
};
TORCH_MODULE(InvertedResidual);

}  // namespace neuroflux
