// The torch::nn layers of the bitmap operators (neuroflux/ops/bitmap.h): thin modules over the
// functional entry points, shaped like the LibTorch layers they stand in for, so a model can swap
// them in without touching its parameters or checkpoints (models/bitmap_activations.cpp does).
// They live in the library, not beside the operators in csrc/, which holds operators only; they
// keep the operators' namespace, which their printed names and users' code already carry.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/pooling.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <ostream>

namespace neuroflux::ops {

/// ReLU whose backward needs only a bit per element. No options (in-place is not supported:
/// the point is to free the dense output).
class BitmapReLUImpl : public torch::nn::Cloneable<BitmapReLUImpl> {
 public:
  BitmapReLUImpl() = default;
  void reset() override {}
  at::Tensor forward(const at::Tensor& x);
  void pretty_print(std::ostream& stream) const override;
};
TORCH_MODULE(BitmapReLU);

/// The Conv2dOptions a Conv2d (or PackedConv2d) was built with, to build its twin.
torch::nn::Conv2dOptions conv2d_options_of(const torch::nn::Conv2dImpl& conv);

/// torch::nn::Conv2d that saves its input packed. Same options, same parameters ("weight",
/// "bias"), same initialisation, so state dicts and checkpoints move freely between the two;
/// a dynamic_cast to torch::nn::Conv2dImpl succeeds. Transposed convolution is not supported.
class PackedConv2dImpl : public torch::nn::Conv2dImpl {
 public:
  PackedConv2dImpl(int64_t input_channels, int64_t output_channels,
                   torch::ExpandingArray<2> kernel_size)
      : PackedConv2dImpl(torch::nn::Conv2dOptions(input_channels, output_channels, kernel_size)) {}
  explicit PackedConv2dImpl(torch::nn::Conv2dOptions options_);
  at::Tensor forward(const at::Tensor& input);
  /// A deep copy that is a PackedConv2dImpl again (Conv2dImpl's would slice it).
  std::shared_ptr<torch::nn::Module> clone(
      const c10::optional<c10::Device>& device = c10::nullopt) const override;
  void pretty_print(std::ostream& stream) const override;
};
TORCH_MODULE(PackedConv2d);

/// torch::nn::MaxPool2d that saves its input packed (no indices kept between the passes).
class PackedMaxPool2dImpl : public torch::nn::MaxPool2dImpl {
 public:
  explicit PackedMaxPool2dImpl(torch::ExpandingArray<2> kernel_size)
      : PackedMaxPool2dImpl(torch::nn::MaxPool2dOptions(kernel_size)) {}
  explicit PackedMaxPool2dImpl(const torch::nn::MaxPool2dOptions& options_);
  at::Tensor forward(const at::Tensor& input);
  std::shared_ptr<torch::nn::Module> clone(
      const c10::optional<c10::Device>& device = c10::nullopt) const override;
  void pretty_print(std::ostream& stream) const override;
};
TORCH_MODULE(PackedMaxPool2d);

}  // namespace neuroflux::ops
