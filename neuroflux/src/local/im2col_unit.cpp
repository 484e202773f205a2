#include "neuroflux/local/im2col_unit.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/conv.h>

#include <array>

namespace neuroflux {

namespace nn = torch::nn;

namespace {

/// Symmetric zero padding of `conv`, or nullopt when the layer pads otherwise.
c10::optional<std::array<int64_t, 2>> zero_padding(const nn::Conv2dImpl& conv) {
  const auto& o = conv.options;
  if (c10::get_if<torch::enumtype::kZeros>(&o.padding_mode()) == nullptr) return c10::nullopt;
  if (const auto* pad = c10::get_if<torch::ExpandingArray<2>>(&o.padding()))
    return std::array<int64_t, 2>{(**pad)[0], (**pad)[1]};
  if (c10::get_if<torch::enumtype::kValid>(&o.padding())) return std::array<int64_t, 2>{0, 0};
  std::array<int64_t, 2> same{};  // kSame: symmetric only when the total padding is even
  for (size_t i = 0; i < 2; ++i) {
    const int64_t total = (*o.dilation())[i] * ((*o.kernel_size())[i] - 1);
    if (total % 2 != 0) return c10::nullopt;
    same[i] = total / 2;
  }
  return same;
}

bool runs_as_product(const nn::Conv2dImpl& conv) {
  return conv.options.groups() == 1 && !conv.options.transposed() && zero_padding(conv);
}

int64_t output_size(int64_t in, int64_t kernel, int64_t stride, int64_t padding,
                    int64_t dilation) {
  return (in + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1;
}

at::Tensor conv_as_product(const nn::Conv2dImpl& conv, const at::Tensor& x) {
  const auto& o = conv.options;
  const std::array<int64_t, 2> padding = *zero_padding(conv);
  const at::IntArrayRef kernel = *o.kernel_size(), stride = *o.stride(), dilation = *o.dilation();
  const int64_t n = x.size(0);
  const int64_t h = output_size(x.size(2), kernel[0], stride[0], padding[0], dilation[0]);
  const int64_t w = output_size(x.size(3), kernel[1], stride[1], padding[1], dilation[1]);
  // [N, C*k*k, L] -> [C*k*k, N*L]: one product for the whole batch, so the weight's gradient
  // is a single [out, C*k*k] matrix (a batched product would expand it N times).
  const at::Tensor columns = at::im2col(x, kernel, dilation, padding, stride)
                                 .transpose(0, 1)
                                 .reshape({x.size(1) * kernel[0] * kernel[1], n * h * w});
  at::Tensor y = conv.weight.view({conv.weight.size(0), -1}).mm(columns);  // [out, N*L]
  if (conv.bias.defined()) y = y + conv.bias.view({-1, 1});
  return y.view({conv.weight.size(0), n, h, w}).transpose(0, 1).contiguous();
}

}  // namespace

bool runs_im2col(const nn::Sequential& unit) {
  if (!unit || unit->is_empty()) return false;
  int64_t direct = 0;
  for (const auto& child : unit->children()) {
    if (const auto* conv = dynamic_cast<const nn::Conv2dImpl*>(child.get())) {
      if (!runs_as_product(*conv)) return false;
      ++direct;
    }
  }
  int64_t all = 0;
  for (const auto& m : unit->modules(/*include_self=*/false))
    all += dynamic_cast<const nn::Conv2dImpl*>(m.get()) != nullptr;
  return direct > 0 && direct == all;
}

at::Tensor im2col_forward(const nn::Sequential& unit, const at::Tensor& input) {
  TORCH_CHECK(runs_im2col(unit), "im2col_forward: the unit's convolutions cannot all run as "
              "products (a conv nested in a block, grouped, transposed or padded otherwise)");
  at::Tensor x = input;
  for (auto& layer : *unit.ptr()) {
    if (const auto* conv = dynamic_cast<const nn::Conv2dImpl*>(layer.ptr().get()))
      x = conv_as_product(*conv, x);
    else
      x = layer.forward(x);
  }
  return x;
}

}  // namespace neuroflux
