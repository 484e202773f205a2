// C++ entry points of the bitmap operators (namespace neuroflux::ops). The public ones are
// declared in <neuroflux/ops/bitmap.h>; this header adds the private ops the autograd wrappers
// and the backends share, and the argument checks every backend runs, so that CPU and CUDA
// reject bad input with the same words. Every entry point calls through the dispatcher.
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

#include "neuroflux/ops/bitmap.h"

namespace neuroflux::ops {

/// Private op: (relu(x), mask of the elements relu kept). The mask has bitmap_pack's layout;
/// a bit is set where x is not <= 0 (positive or NaN), as ATen's relu gradient decides.
std::tuple<at::Tensor, at::Tensor> _bitmap_relu_forward(const at::Tensor& x);

/// Private op: grad_output where the relu mask is set, 0 elsewhere (relu's backward).
at::Tensor _bitmap_relu_backward(const at::Tensor& grad_output, const at::Tensor& mask);

namespace detail {

/// Refuses anything but float32, float64, float16 and bfloat16, naming `op` and the dtype.
void check_floating(const at::Tensor& x, const char* op, const char* arg);

/// Checks a (mask, values, sizes) triple whose values are not yet counted: dtypes, dimensions,
/// devices, and that mask has ceil(prod(sizes) / 32) words. Returns prod(sizes).
int64_t check_unpack_args(const at::Tensor& mask, const at::Tensor& values, at::IntArrayRef sizes);

/// After the backend counted the mask: its set bits must match values, and the unused bits of
/// the last word must be clear.
void check_unpack_counts(int64_t set_bits, bool tail_clear, const at::Tensor& values,
                         int64_t numel);

/// Checks a relu mask against the gradient it will select from.
void check_relu_mask(const at::Tensor& grad_output, const at::Tensor& mask);

}  // namespace detail
}  // namespace neuroflux::ops
