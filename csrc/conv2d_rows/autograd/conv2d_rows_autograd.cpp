// Autograd wrapper of conv2d_rows (TORCH_LIBRARY_IMPL(neuroflux, Autograd, m)). Forward saves
// the input band and the weight, as ATen's conv does; backward is the private op
// _conv2d_rows_backward, dispatched to the band's device. Double backward is refused: the
// backward op is not itself differentiable, so a gradient taken with create_graph=true would
// silently miss terms.
#include <ATen/core/Tensor.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <vector>

#include "csrc/conv2d_rows/conv2d_rows.h"

namespace neuroflux::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::Variable;
using torch::autograd::variable_list;

struct RowsParams {
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups, input_row0, input_height, r0, r1;
};

at::Tensor call_below_autograd(const at::Tensor& input, const at::Tensor& weight,
                               const at::Tensor& bias, const RowsParams& p) {
  at::AutoDispatchBelowADInplaceOrView guard;
  return conv2d_rows(input, weight, bias, p.stride, p.padding, p.dilation, p.groups, p.input_row0,
                     p.input_height, p.r0, p.r1);
}

void save(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& weight,
          const RowsParams& p) {
  ctx->save_for_backward({input, weight});
  ctx->saved_data["stride"] = p.stride;
  ctx->saved_data["padding"] = p.padding;
  ctx->saved_data["dilation"] = p.dilation;
  ctx->saved_data["groups"] = p.groups;
  ctx->saved_data["input_row0"] = p.input_row0;
  ctx->saved_data["input_height"] = p.input_height;
  ctx->saved_data["r0"] = p.r0;
  ctx->saved_data["r1"] = p.r1;
}

variable_list backward_of(AutogradContext* ctx, const Variable& grad_output, bool has_bias) {
  TORCH_CHECK(!at::GradMode::is_enabled(),
              "conv2d_rows: double backward is not supported (backward was called with "
              "create_graph=true)");
  const auto saved = ctx->get_saved_variables();
  const auto& d = ctx->saved_data;
  const std::array<bool, 3> mask{ctx->needs_input_grad(0), ctx->needs_input_grad(1),
                                 has_bias && ctx->needs_input_grad(2)};
  auto [gi, gw, gb] = _conv2d_rows_backward(
      grad_output.contiguous(), saved[0], saved[1], d.at("stride").toIntVector(),
      d.at("padding").toIntVector(), d.at("dilation").toIntVector(), d.at("groups").toInt(),
      d.at("input_row0").toInt(), d.at("input_height").toInt(), d.at("r0").toInt(),
      d.at("r1").toInt(), mask);
  return {gi, gw, gb};
}

// Two Functions because a LibTorch 1.13 C++ Function cannot take an undefined tensor input.
class Conv2dRowsFunction : public torch::autograd::Function<Conv2dRowsFunction> {
 public:
  static Variable forward(AutogradContext* ctx, const Variable& input, const Variable& weight,
                          const Variable& bias, const RowsParams& p) {
    save(ctx, input, weight, p);
    return call_below_autograd(input, weight, bias, p);
  }
  static variable_list backward(AutogradContext* ctx, const variable_list& grads) {
    auto g = backward_of(ctx, grads[0], /*has_bias=*/true);
    return {g[0], g[1], g[2], Variable()};
  }
};

class Conv2dRowsNoBiasFunction : public torch::autograd::Function<Conv2dRowsNoBiasFunction> {
 public:
  static Variable forward(AutogradContext* ctx, const Variable& input, const Variable& weight,
                          const RowsParams& p) {
    save(ctx, input, weight, p);
    return call_below_autograd(input, weight, at::Tensor(), p);
  }
  static variable_list backward(AutogradContext* ctx, const variable_list& grads) {
    auto g = backward_of(ctx, grads[0], /*has_bias=*/false);
    return {g[0], g[1], Variable()};
  }
};

at::Tensor conv2d_rows_autograd(const at::Tensor& input, const at::Tensor& weight,
                                const c10::optional<at::Tensor>& bias_opt,
                                at::IntArrayRef stride, at::IntArrayRef padding,
                                at::IntArrayRef dilation, int64_t groups, int64_t input_row0,
                                int64_t input_height, int64_t r0, int64_t r1) {
  const at::Tensor bias = bias_opt.value_or(at::Tensor());
  RowsParams p{stride.vec(), padding.vec(), dilation.vec(), groups, input_row0, input_height,
               r0, r1};
  if (bias.defined()) return Conv2dRowsFunction::apply(input, weight, bias, p);
  return Conv2dRowsNoBiasFunction::apply(input, weight, p);
}

}  // namespace

TORCH_LIBRARY_IMPL(neuroflux, Autograd, m) { m.impl("conv2d_rows", &conv2d_rows_autograd); }

}  // namespace neuroflux::ops
