// CPU implementation of conv2d_rows on ATen's own convolution: the band's rows go to
// at::convolution as a view (no padded or concatenated copy of the band), with the symmetric H
// padding rows::aten_slice chooses so that zero padding lands only on the map's true edges; the
// width goes through convolution's own padding. Backward is at::convolution_backward on the same
// view, the function ATen's conv autograd calls.
#include <ATen/core/Tensor.h>
#include <ATen/ops/convolution.h>
#include <ATen/ops/convolution_backward.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <vector>

#include "csrc/conv2d_rows/conv2d_rows.h"
#include "csrc/conv2d_rows/conv2d_rows_logic.h"

namespace neuroflux::ops {
namespace {

struct Call {
  rows::AtenSlice slice;
  at::Tensor view;                    // the input rows ATen convolves
  std::vector<int64_t> aten_padding;  // {H padding of the slice, the layer's W padding}
};

bool reads_no_row(const at::Tensor& weight, at::IntArrayRef stride, at::IntArrayRef padding,
                  at::IntArrayRef dilation, int64_t input_height, int64_t r0, int64_t r1) {
  const rows::Window hw = detail::h_window(weight.sizes(), stride, padding, dilation);
  return rows::input_rows(hw, rows::Span{r0, r1}, input_height).empty();
}

Call plan_call(const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
               at::IntArrayRef padding, at::IntArrayRef dilation, int64_t input_row0,
               int64_t input_height, int64_t r0, int64_t r1) {
  const rows::Window hw = detail::h_window(weight.sizes(), stride, padding, dilation);
  Call c;
  c.slice = rows::aten_slice(hw, rows::Span{r0, r1}, input_height);
  TORCH_INTERNAL_ASSERT(c.slice.in.begin >= input_row0 &&
                        c.slice.in.end <= input_row0 + input.size(2) &&
                        c.slice.first + (r1 - r0) <= c.slice.rows);
  c.view = input.narrow(2, c.slice.in.begin - input_row0, c.slice.in.size());
  c.aten_padding = {c.slice.padding, padding[1]};
  return c;
}

at::Tensor conv2d_rows_cpu(const at::Tensor& input, const at::Tensor& weight,
                           const c10::optional<at::Tensor>& bias_opt, at::IntArrayRef stride,
                           at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                           int64_t input_row0, int64_t input_height, int64_t r0, int64_t r1) {
  const at::Tensor bias = bias_opt.value_or(at::Tensor());
  const int64_t out_w = detail::check_conv2d_rows_args("conv2d_rows", input, weight, bias, stride,
                                                       padding, dilation, groups, input_row0,
                                                       input_height, r0, r1);
  if (r0 == r1) return at::zeros({input.size(0), weight.size(0), 0, out_w}, input.options());
  if (reads_no_row(weight, stride, padding, dilation, input_height, r0, r1)) {
    // Every window lies in the padding (kernel 1 with padding >= 1, say): the bias alone.
    at::Tensor y = at::zeros({input.size(0), weight.size(0), r1 - r0, out_w}, input.options());
    if (bias.defined()) y.add_(bias.view({1, -1, 1, 1}));
    return y;
  }
  const Call c =
      plan_call(input, weight, stride, padding, dilation, input_row0, input_height, r0, r1);
  at::Tensor y = at::convolution(c.view, weight, bias, stride, c.aten_padding, dilation,
                                 /*transposed=*/false, /*output_padding=*/{0, 0}, groups);
  if (c.slice.first == 0 && c.slice.rows == r1 - r0) return y;
  // Edge bands only: at most ceil(p / s) rows past the band were computed; drop them.
  return y.narrow(2, c.slice.first, r1 - r0).contiguous();
}

at::Tensor& conv2d_rows_out_cpu(const at::Tensor& input, const at::Tensor& weight,
                                const c10::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                                int64_t input_row0, int64_t input_height, int64_t r0, int64_t r1,
                                at::Tensor& out) {
  const at::Tensor y = conv2d_rows_cpu(input, weight, bias, stride, padding, dilation, groups,
                                       input_row0, input_height, r0, r1);
  TORCH_CHECK(out.sizes() == y.sizes(), "conv2d_rows.out: out has sizes ", out.sizes(),
              ", the result has ", y.sizes());
  // ATen's CPU convolutions (oneDNN, im2col) have no out= form that takes a strided slice, so
  // the band's result is copied into place: one output band, never the input band.
  out.copy_(y);
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_rows_backward_cpu(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
    int64_t input_row0, int64_t input_height, int64_t r0, int64_t r1,
    std::array<bool, 3> output_mask) {
  const int64_t out_w =
      detail::check_conv2d_rows_args("_conv2d_rows_backward", input, weight, at::Tensor(), stride,
                                     padding, dilation, groups, input_row0, input_height, r0, r1);
  const std::vector<int64_t> expected{input.size(0), weight.size(0), r1 - r0, out_w};
  detail::check_conv2d_rows_grad(grad_output, input, expected);
  if (r0 == r1) {
    return {output_mask[0] ? at::zeros_like(input) : at::Tensor(),
            output_mask[1] ? at::zeros_like(weight) : at::Tensor(),
            output_mask[2] ? at::zeros({weight.size(0)}, weight.options()) : at::Tensor()};
  }
  if (reads_no_row(weight, stride, padding, dilation, input_height, r0, r1)) {
    return {output_mask[0] ? at::zeros_like(input) : at::Tensor(),
            output_mask[1] ? at::zeros_like(weight) : at::Tensor(),
            output_mask[2] ? grad_output.sum({0, 2, 3}) : at::Tensor()};
  }
  const Call c =
      plan_call(input, weight, stride, padding, dilation, input_row0, input_height, r0, r1);
  at::Tensor grad = grad_output;
  if (c.slice.first != 0 || c.slice.rows != r1 - r0) {
    // The dropped edge rows get a zero gradient.
    grad = at::zeros({expected[0], expected[1], c.slice.rows, out_w}, grad_output.options());
    grad.narrow(2, c.slice.first, r1 - r0).copy_(grad_output);
  }
  const std::vector<int64_t> bias_sizes{weight.size(0)};
  auto [gi, gw, gb] = at::convolution_backward(
      grad, c.view, weight, output_mask[2] ? at::OptionalIntArrayRef(bias_sizes) : c10::nullopt,
      stride, c.aten_padding, dilation, /*transposed=*/false, /*output_padding=*/{0, 0}, groups,
      output_mask);
  if (gi.defined() && c.view.size(2) != input.size(2)) {
    // Rows of the band that no output row reads (the band may be taller than this call needs).
    at::Tensor full = at::zeros_like(input);
    full.narrow(2, c.slice.in.begin - input_row0, c.slice.in.size()).copy_(gi);
    gi = full;
  }
  return {gi, gw, gb};
}

}  // namespace

TORCH_LIBRARY_IMPL(neuroflux, CPU, m) {
  m.impl("conv2d_rows", &conv2d_rows_cpu);
  m.impl("conv2d_rows.out", &conv2d_rows_out_cpu);
  m.impl("_conv2d_rows_backward", &conv2d_rows_backward_cpu);
}

}  // namespace neuroflux::ops
