// Autograd wrappers of the bitmap layers (TORCH_LIBRARY_IMPL(neuroflux, Autograd, m)): what each
// forward keeps for backward, and how backward gets the dense tensor back.
//
//   bitmap_relu        saves only the mask of the elements relu kept (1 bit per element, not the
//                      output): grad_x = grad_y where the bit is set, 0 elsewhere.
//   packed_conv2d      saves its input packed (mask + non-zeros) instead of dense, plus the
//                      weight it already holds; backward unpacks it and calls
//                      at::convolution_backward, the very function ATen's conv autograd calls.
//   packed_max_pool2d  saves its input packed and no indices; backward unpacks, recomputes the
//                      argmax with at::max_pool2d_with_indices and routes the gradient with
//                      at::max_pool2d_with_indices_backward, as ATen's max_pool2d autograd does.
// Pack/unpack are lossless and the backward math is ATen's own, so gradients are bit-identical
// to the dense layers'. Double backward is refused: a backward called with create_graph=true
// fails with a clear message rather than return a gradient that misses terms.
//
// The dense fallbacks registered as CompositeExplicitAutograd serve calls that bypass autograd
// (c10::InferenceMode): they compute the same forward and save nothing.
#include <ATen/core/Tensor.h>
#include <ATen/ops/conv2d.h>
#include <ATen/ops/convolution_backward.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/max_pool2d.h>
#include <ATen/ops/max_pool2d_with_indices.h>
#include <ATen/ops/max_pool2d_with_indices_backward.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <array>
#include <string>
#include <vector>

#include "csrc/bitmap/bitmap.h"

namespace neuroflux::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::Variable;
using torch::autograd::variable_list;

// Backward runs with grad mode on exactly when the caller asked for create_graph=true, i.e. for
// a gradient that can itself be differentiated. These backward passes rebuild their input from
// the packed copy, outside the graph, so such a gradient would silently miss terms: refuse.
void refuse_double_backward(const char* op) {
  TORCH_CHECK(!at::GradMode::is_enabled(), op,
              ": double backward is not supported (backward was called with create_graph=true); "
              "use the dense layer where second derivatives are needed");
}

bool any_requires_grad(std::initializer_list<at::Tensor> tensors) {
  if (!at::GradMode::is_enabled()) return false;
  for (const auto& t : tensors) {
    if (t.defined() && t.requires_grad()) return true;
  }
  return false;
}

// Layout. The ops work in row-major element order and copy other layouts to it first. A
// channels-last tensor (N, C, H, W) is instead handled in its memory order, as the row-major
// (N, H, W, C) tensor it is underneath: nothing is copied, relu's output stays channels-last
// (so the next conv keeps its channels-last algorithm) and a packed input comes back
// channels-last, the layout ATen's backward saw in the dense layer.
bool is_channels_last(const at::Tensor& x) {
  return x.dim() == 4 && !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
}
at::Tensor to_memory_order(const at::Tensor& x, bool channels_last) {
  return channels_last ? x.permute({0, 2, 3, 1}) : x;
}
at::Tensor from_memory_order(const at::Tensor& x, bool channels_last) {
  return channels_last ? x.permute({0, 3, 1, 2}) : x;
}

// A saved (packed) tensor: saves the mask and values with `ctx`, its sizes and layout in
// saved_data under `key`, and gives the dense tensor back in backward.
void save_packed(AutogradContext* ctx, const at::Tensor& x, const std::string& key,
                 std::vector<at::Tensor>& to_save) {
  const bool channels_last = is_channels_last(x);
  auto [mask, values] = bitmap_pack(to_memory_order(x, channels_last));
  to_save.push_back(mask);
  to_save.push_back(values);
  ctx->saved_data[key + "_sizes"] = x.sizes().vec();
  ctx->saved_data[key + "_channels_last"] = channels_last;
}
at::Tensor unpack_saved(const AutogradContext* ctx, const at::Tensor& mask,
                        const at::Tensor& values, const std::string& key) {
  auto sizes = ctx->saved_data.at(key + "_sizes").toIntVector();
  const bool channels_last = ctx->saved_data.at(key + "_channels_last").toBool();
  if (channels_last) sizes = {sizes[0], sizes[2], sizes[3], sizes[1]};
  return from_memory_order(bitmap_unpack(mask, values, sizes), channels_last);
}

// ---- bitmap_relu ----

// relu(x) and its mask, in x's memory order when x is channels-last.
std::tuple<at::Tensor, at::Tensor> relu_forward(const at::Tensor& x, bool channels_last) {
  auto [y, mask] = _bitmap_relu_forward(to_memory_order(x, channels_last));
  return {from_memory_order(y, channels_last), mask};
}

class BitmapReLUFunction : public torch::autograd::Function<BitmapReLUFunction> {
 public:
  static Variable forward(AutogradContext* ctx, const Variable& x) {
    const bool channels_last = is_channels_last(x);
    auto [y, mask] = relu_forward(x, channels_last);
    ctx->save_for_backward({mask});
    ctx->saved_data["channels_last"] = channels_last;
    return y;
  }
  static variable_list backward(AutogradContext* ctx, const variable_list& grads) {
    refuse_double_backward("bitmap_relu");
    const bool channels_last = ctx->saved_data.at("channels_last").toBool();
    // The mask follows the forward's memory order; a gradient in another layout is copied to it.
    const at::Tensor g = _bitmap_relu_backward(to_memory_order(grads[0], channels_last),
                                               ctx->get_saved_variables()[0]);
    return {from_memory_order(g, channels_last)};
  }
};

at::Tensor bitmap_relu_autograd(const at::Tensor& x) {
  detail::check_floating(x, "bitmap_relu", "x");
  if (!any_requires_grad({x})) return std::get<0>(relu_forward(x, is_channels_last(x)));
  return BitmapReLUFunction::apply(x);
}

at::Tensor bitmap_relu_dense(const at::Tensor& x) {
  return std::get<0>(relu_forward(x, is_channels_last(x)));
}

// ---- packed_conv2d ----

struct ConvParams {
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups;
};

// The forward and backward bodies, shared by the with-bias and without-bias Functions (a C++
// autograd Function in LibTorch 1.13 cannot take an undefined tensor as an input).
Variable conv_forward(AutogradContext* ctx, const Variable& input, const Variable& weight,
                      const Variable& bias, const ConvParams& p) {
  at::Tensor out = at::conv2d(input, weight, bias, p.stride, p.padding, p.dilation, p.groups);
  // Only the weight gradient reads the input; skip packing when the weight is frozen.
  std::vector<at::Tensor> to_save{weight};
  ctx->saved_data["input_saved"] = weight.requires_grad();
  if (weight.requires_grad()) save_packed(ctx, input, "input", to_save);
  ctx->saved_data["input_sizes"] = input.sizes().vec();
  ctx->saved_data["input_channels_last"] = is_channels_last(input);
  ctx->save_for_backward(to_save);
  ctx->saved_data["stride"] = p.stride;
  ctx->saved_data["padding"] = p.padding;
  ctx->saved_data["dilation"] = p.dilation;
  ctx->saved_data["groups"] = p.groups;
  return out;
}

// Returns (grad_input, grad_weight, grad_bias); those autograd does not ask for are undefined.
variable_list conv_backward(AutogradContext* ctx, const Variable& grad_output, bool has_bias) {
  refuse_double_backward("packed_conv2d");
  const auto saved = ctx->get_saved_variables();
  const at::Tensor& weight = saved[0];
  const auto& d = ctx->saved_data;
  const bool input_saved = d.at("input_saved").toBool();
  const std::array<bool, 3> output_mask{ctx->needs_input_grad(0), ctx->needs_input_grad(1),
                                        has_bias && ctx->needs_input_grad(2)};
  TORCH_INTERNAL_ASSERT(!output_mask[1] || input_saved,
                        "packed_conv2d: weight gradient requested but the input was not saved");
  // Without a saved input (frozen weight) only grad_input is computed, which needs the input's
  // shape and layout but never reads it: an uninitialised tensor stands in.
  const at::Tensor input =
      input_saved ? unpack_saved(ctx, saved[1], saved[2], "input")
                  : at::empty(d.at("input_sizes").toIntVector(),
                              weight.options().memory_format(d.at("input_channels_last").toBool()
                                                                 ? at::MemoryFormat::ChannelsLast
                                                                 : at::MemoryFormat::Contiguous));
  const std::vector<int64_t> bias_sizes{weight.size(0)};
  auto [gi, gw, gb] = at::convolution_backward(
      grad_output, input, weight,
      has_bias ? at::OptionalIntArrayRef(bias_sizes) : at::OptionalIntArrayRef(),
      d.at("stride").toIntVector(), d.at("padding").toIntVector(), d.at("dilation").toIntVector(),
      /*transposed=*/false, /*output_padding=*/{0, 0}, d.at("groups").toInt(), output_mask);
  return {gi, gw, gb};
}

class PackedConv2dFunction : public torch::autograd::Function<PackedConv2dFunction> {
 public:
  static Variable forward(AutogradContext* ctx, const Variable& input, const Variable& weight,
                          const Variable& bias, const ConvParams& p) {
    return conv_forward(ctx, input, weight, bias, p);
  }
  static variable_list backward(AutogradContext* ctx, const variable_list& grads) {
    auto g = conv_backward(ctx, grads[0], /*has_bias=*/true);
    return {g[0], g[1], g[2], Variable()};
  }
};

class PackedConv2dNoBiasFunction : public torch::autograd::Function<PackedConv2dNoBiasFunction> {
 public:
  static Variable forward(AutogradContext* ctx, const Variable& input, const Variable& weight,
                          const ConvParams& p) {
    return conv_forward(ctx, input, weight, at::Tensor(), p);
  }
  static variable_list backward(AutogradContext* ctx, const variable_list& grads) {
    auto g = conv_backward(ctx, grads[0], /*has_bias=*/false);
    return {g[0], g[1], Variable()};
  }
};

at::Tensor packed_conv2d_autograd(const at::Tensor& input, const at::Tensor& weight,
                                  const c10::optional<at::Tensor>& bias_opt, at::IntArrayRef stride,
                                  at::IntArrayRef padding, at::IntArrayRef dilation,
                                  int64_t groups) {
  const at::Tensor bias = bias_opt.value_or(at::Tensor());
  TORCH_CHECK(input.dim() == 4, "packed_conv2d: input must be (N, C, H, W), got sizes ",
              input.sizes());
  detail::check_floating(input, "packed_conv2d", "input");
  if (!any_requires_grad({input, weight, bias})) {
    return at::conv2d(input, weight, bias, stride, padding, dilation, groups);
  }
  ConvParams p{stride.vec(), padding.vec(), dilation.vec(), groups};
  if (bias.defined()) return PackedConv2dFunction::apply(input, weight, bias, p);
  return PackedConv2dNoBiasFunction::apply(input, weight, p);
}

at::Tensor packed_conv2d_dense(const at::Tensor& input, const at::Tensor& weight,
                               const c10::optional<at::Tensor>& bias, at::IntArrayRef stride,
                               at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  return at::conv2d(input, weight, bias, stride, padding, dilation, groups);
}

// ---- packed_max_pool2d ----

struct PoolParams {
  std::vector<int64_t> kernel_size, stride, padding, dilation;
  bool ceil_mode;
};

class PackedMaxPool2dFunction : public torch::autograd::Function<PackedMaxPool2dFunction> {
 public:
  static Variable forward(AutogradContext* ctx, const Variable& x, const PoolParams& p) {
    at::Tensor out = at::max_pool2d(x, p.kernel_size, p.stride, p.padding, p.dilation, p.ceil_mode);
    std::vector<at::Tensor> to_save;
    save_packed(ctx, x, "input", to_save);
    ctx->save_for_backward(to_save);
    ctx->saved_data["kernel_size"] = p.kernel_size;
    ctx->saved_data["stride"] = p.stride;
    ctx->saved_data["padding"] = p.padding;
    ctx->saved_data["dilation"] = p.dilation;
    ctx->saved_data["ceil_mode"] = p.ceil_mode;
    return out;
  }
  static variable_list backward(AutogradContext* ctx, const variable_list& grads) {
    refuse_double_backward("packed_max_pool2d");
    const auto saved = ctx->get_saved_variables();
    const auto& d = ctx->saved_data;
    const auto kernel_size = d.at("kernel_size").toIntVector();
    const auto stride = d.at("stride").toIntVector();
    const auto padding = d.at("padding").toIntVector();
    const auto dilation = d.at("dilation").toIntVector();
    const bool ceil_mode = d.at("ceil_mode").toBool();
    const at::Tensor input = unpack_saved(ctx, saved[0], saved[1], "input");
    // The argmax positions, recomputed from the exact input: the same indices forward found.
    const at::Tensor indices = std::get<1>(
        at::max_pool2d_with_indices(input, kernel_size, stride, padding, dilation, ceil_mode));
    return {at::max_pool2d_with_indices_backward(grads[0], input, kernel_size, stride, padding,
                                                 dilation, ceil_mode, indices),
            Variable()};
  }
};

at::Tensor packed_max_pool2d_autograd(const at::Tensor& x, at::IntArrayRef kernel_size,
                                      at::IntArrayRef stride, at::IntArrayRef padding,
                                      at::IntArrayRef dilation, bool ceil_mode) {
  detail::check_floating(x, "packed_max_pool2d", "x");
  if (!any_requires_grad({x})) {
    return at::max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode);
  }
  return PackedMaxPool2dFunction::apply(
      x, PoolParams{kernel_size.vec(), stride.vec(), padding.vec(), dilation.vec(), ceil_mode});
}

at::Tensor packed_max_pool2d_dense(const at::Tensor& x, at::IntArrayRef kernel_size,
                                   at::IntArrayRef stride, at::IntArrayRef padding,
                                   at::IntArrayRef dilation, bool ceil_mode) {
  return at::max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode);
}

}  // namespace

TORCH_LIBRARY_IMPL(neuroflux, Autograd, m) {
  m.impl("bitmap_relu", &bitmap_relu_autograd);
  m.impl("packed_conv2d", &packed_conv2d_autograd);
  m.impl("packed_max_pool2d", &packed_max_pool2d_autograd);
}

TORCH_LIBRARY_IMPL(neuroflux, CompositeExplicitAutograd, m) {
  m.impl("bitmap_relu", &bitmap_relu_dense);
  m.impl("packed_conv2d", &packed_conv2d_dense);
  m.impl("packed_max_pool2d", &packed_max_pool2d_dense);
}

}  // namespace neuroflux::ops
