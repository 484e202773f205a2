// C++ entry points of the conv2d_rows operators (namespace neuroflux::ops). The public ones are
// declared in <neuroflux/ops/conv2d_rows.h>; this header adds the private backward op the
// autograd wrapper calls and the argument checks every backend runs, so CPU and CUDA reject bad
// input with the same words. Every entry point calls through the dispatcher.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <tuple>

#include "csrc/conv2d_rows/conv2d_rows_logic.h"
#include "neuroflux/ops/conv2d_rows.h"

namespace neuroflux::ops {

/// Private op: (grad_input, grad_weight, grad_bias) of conv2d_rows for grad_output (N, Cout,
/// r1 - r0, Wout); grad_input has input's shape (rows of the band no output row reads get 0).
/// Entries output_mask does not ask for are undefined.
std::tuple<at::Tensor, at::Tensor, at::Tensor> _conv2d_rows_backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
    int64_t input_row0, int64_t input_height, int64_t r0, int64_t r1,
    std::array<bool, 3> output_mask);

namespace detail {

/// The H-axis window of a conv2d_rows call.
inline rows::Window h_window(at::IntArrayRef weight_sizes, at::IntArrayRef stride,
                             at::IntArrayRef padding, at::IntArrayRef dilation) {
  return rows::Window{weight_sizes[2], stride[0], padding[0], dilation[0]};
}

/// Checks a conv2d_rows call: dtypes, devices, ranks, that groups divide the channels, that
/// [r0, r1) lies in the output and that the band holds every row those output rows read.
/// Returns the output width.
int64_t check_conv2d_rows_args(const char* op, const at::Tensor& input, const at::Tensor& weight,
                               const at::Tensor& bias, at::IntArrayRef stride,
                               at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                               int64_t input_row0, int64_t input_height, int64_t r0, int64_t r1);

/// Checks grad_output of a _conv2d_rows_backward call: input's dtype and device (a kernel reads
/// it as input's type, and on CUDA a host pointer would be read on the device) and the forward's
/// output sizes `expected`.
void check_conv2d_rows_grad(const at::Tensor& grad_output, const at::Tensor& input,
                            at::IntArrayRef expected);

}  // namespace detail
}  // namespace neuroflux::ops
