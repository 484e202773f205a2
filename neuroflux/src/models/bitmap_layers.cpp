#include "neuroflux/models/bitmap_layers.h"

#include <torch/nn/functional/padding.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/pooling.h>
#include <torch/nn/options/padding.h>
#include <torch/utils.h>

#include <sstream>
#include <string>

#include "neuroflux/ops/bitmap.h"

namespace neuroflux::ops {
namespace {

// "torch::nn::Conv2d(1, 2, ...)" -> "neuroflux::ops::PackedConv2d(1, 2, ...)".
std::string renamed(const std::string& printed, const std::string& from, const std::string& to) {
  if (printed.rfind(from, 0) != 0) return printed;
  return to + printed.substr(from.size());
}

torch::nn::functional::PadFuncOptions::mode_t pad_mode_of(
    const torch::nn::detail::conv_padding_mode_t& mode) {
  if (c10::get_if<torch::enumtype::kReflect>(&mode)) return torch::kReflect;
  if (c10::get_if<torch::enumtype::kReplicate>(&mode)) return torch::kReplicate;
  if (c10::get_if<torch::enumtype::kCircular>(&mode)) return torch::kCircular;
  TORCH_CHECK(false, "PackedConv2d: unsupported padding_mode");
}

}  // namespace

at::Tensor BitmapReLUImpl::forward(const at::Tensor& x) { return bitmap_relu(x); }

void BitmapReLUImpl::pretty_print(std::ostream& stream) const {
  stream << "neuroflux::ops::BitmapReLU()";
}

PackedConv2dImpl::PackedConv2dImpl(torch::nn::Conv2dOptions options_)
    : torch::nn::Conv2dImpl(std::move(options_)) {}

at::Tensor PackedConv2dImpl::forward(const at::Tensor& input) {
  const auto& o = options;
  at::Tensor x = input;
  std::vector<int64_t> padding{0, 0};
  if (!c10::get_if<torch::enumtype::kZeros>(&o.padding_mode())) {
    // As Conv2d does: pad explicitly (reflect / replicate / circular), then convolve unpadded.
    // The padded tensor is what gets saved packed.
    namespace F = torch::nn::functional;
    x = F::pad(
        x, F::PadFuncOptions(_reversed_padding_repeated_twice).mode(pad_mode_of(o.padding_mode())));
  } else if (const auto* pad = c10::get_if<torch::ExpandingArray<2>>(&o.padding())) {
    padding = at::IntArrayRef(*pad).vec();
  } else if (c10::get_if<torch::enumtype::kSame>(&o.padding())) {
    // padding='same' the way ATen's conv2d does it: half the total on each side, and when the
    // total is odd the extra row / column on the bottom / right through an explicit zero pad.
    std::vector<int64_t> extra(4, 0);  // constant_pad_nd order: W left, W right, H left, H right
    bool asymmetric = false;
    for (int i = 0; i < 2; ++i) {
      const int64_t total = (*o.dilation())[i] * ((*o.kernel_size())[i] - 1);
      padding[i] = total / 2;
      const int64_t delta = total - 2 * padding[i];
      extra[2 * (1 - i) + 1] = delta;
      asymmetric = asymmetric || delta != 0;
    }
    if (asymmetric) x = at::constant_pad_nd(x, extra, 0);
  }  // kValid: no padding
  return packed_conv2d(x, weight, bias, *o.stride(), padding, *o.dilation(), o.groups());
}

std::shared_ptr<torch::nn::Module> PackedConv2dImpl::clone(
    const c10::optional<c10::Device>& device) const {
  torch::NoGradGuard no_grad;
  auto copy = std::make_shared<PackedConv2dImpl>(conv2d_options_of(*this));
  const auto copy_into = [&](at::Tensor& dst, const at::Tensor& src) {
    if (!src.defined()) return;
    dst.set_data(device ? src.data().to(*device) : src.data().clone());
    dst.set_requires_grad(src.requires_grad());
  };
  copy_into(copy->weight, weight);
  copy_into(copy->bias, bias);
  copy->train(is_training());
  return copy;
}

void PackedConv2dImpl::pretty_print(std::ostream& stream) const {
  std::ostringstream base;
  torch::nn::Conv2dImpl::pretty_print(base);
  stream << renamed(base.str(), "torch::nn::Conv2d", "neuroflux::ops::PackedConv2d");
}

PackedMaxPool2dImpl::PackedMaxPool2dImpl(const torch::nn::MaxPool2dOptions& options_)
    : torch::nn::MaxPool2dImpl(options_) {}

at::Tensor PackedMaxPool2dImpl::forward(const at::Tensor& input) {
  return packed_max_pool2d(input, *options.kernel_size(), *options.stride(), *options.padding(),
                           *options.dilation(), options.ceil_mode());
}

std::shared_ptr<torch::nn::Module> PackedMaxPool2dImpl::clone(
    const c10::optional<c10::Device>&) const {
  auto copy = std::make_shared<PackedMaxPool2dImpl>(options);
  copy->train(is_training());
  return copy;
}

void PackedMaxPool2dImpl::pretty_print(std::ostream& stream) const {
  std::ostringstream base;
  torch::nn::MaxPool2dImpl::pretty_print(base);
  stream << renamed(base.str(), "torch::nn::MaxPool2d", "neuroflux::ops::PackedMaxPool2d");
}

torch::nn::Conv2dOptions conv2d_options_of(const torch::nn::Conv2dImpl& conv) {
  const auto& o = conv.options;
  return torch::nn::Conv2dOptions(o.in_channels(), o.out_channels(), o.kernel_size())
      .stride(o.stride())
      .padding(o.padding())
      .dilation(o.dilation())
      .groups(o.groups())
      .bias(o.bias())
      .padding_mode(o.padding_mode());
}

}  // namespace neuroflux::ops
