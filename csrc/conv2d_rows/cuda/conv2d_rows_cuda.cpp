// CUDA implementation of conv2d_rows: the LibTorch side of cuda/conv2d_rows_kernels.cu. Compiled
// only when LibTorch has CUDA (NEUROFLUX_WITH_CUDA); run by the [cuda] tests where a GPU exists
// (scripts/gpu-check.sh). Every wrapper follows one order: check the arguments and devices,
// CUDAGuard, the current stream, return early on empty output, AT_DISPATCH, launch, check.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "csrc/conv2d_rows/cuda/conv2d_rows_kernels.cuh"
#include "csrc/conv2d_rows/conv2d_rows.h"

namespace neuroflux::ops {
namespace {

cuda::RowsConvShape shape_of(const at::Tensor& input, const at::Tensor& weight,
                             at::IntArrayRef stride, at::IntArrayRef padding,
                             at::IntArrayRef dilation, int64_t groups, int64_t input_row0,
                             int64_t input_height, int64_t r0, int64_t r1, int64_t out_w) {
  return cuda::RowsConvShape{input.size(0), input.size(1),  input.size(2), input.size(3),
                             weight.size(0), weight.size(2), weight.size(3), stride[0],
                             stride[1],      padding[0],    padding[1],    dilation[0],
                             dilation[1],    groups,        input_row0,    input_height,
                             r0,             r1,            out_w};
}

void check_cuda(const char* op, const at::Tensor& input) {
  TORCH_CHECK(input.is_cuda(), op, " (CUDA): input is on ", input.device());
  TORCH_CHECK(input.scalar_type() == at::kFloat || input.scalar_type() == at::kDouble, op,
              " (CUDA): float32 and float64 only, got ", input.scalar_type());
}

at::Tensor conv2d_rows_cuda(const at::Tensor& input_in, const at::Tensor& weight_in,
                            const c10::optional<at::Tensor>& bias_opt, at::IntArrayRef stride,
                            at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                            int64_t input_row0, int64_t input_height, int64_t r0, int64_t r1) {
  const at::Tensor bias_in = bias_opt.value_or(at::Tensor());
  const int64_t out_w = detail::check_conv2d_rows_args("conv2d_rows", input_in, weight_in,
                                                       bias_in, stride, padding, dilation, groups,
                                                       input_row0, input_height, r0, r1);
  check_cuda("conv2d_rows", input_in);
  const c10::cuda::CUDAGuard guard(input_in.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const at::Tensor input = input_in.contiguous();
  const at::Tensor weight = weight_in.contiguous();
  const at::Tensor bias = bias_in.defined() ? bias_in.contiguous() : bias_in;
  at::Tensor out = at::empty({input.size(0), weight.size(0), r1 - r0, out_w}, input.options());
  if (out.numel() == 0) return out;
  const auto s = shape_of(input, weight, stride, padding, dilation, groups, input_row0,
                          input_height, r0, r1, out_w);
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "conv2d_rows_cuda", [&] {
    C10_CUDA_CHECK(cuda::launch_conv2d_rows_forward<scalar_t>(
        input.data_ptr<scalar_t>(), weight.data_ptr<scalar_t>(),
        bias.defined() ? bias.data_ptr<scalar_t>() : nullptr, s, out.data_ptr<scalar_t>(),
        stream));
  });
  return out;
}

at::Tensor& conv2d_rows_out_cuda(const at::Tensor& input, const at::Tensor& weight,
                                 const c10::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                 at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                                 int64_t input_row0, int64_t input_height, int64_t r0, int64_t r1,
                                 at::Tensor& out) {
  const at::Tensor y = conv2d_rows_cuda(input, weight, bias, stride, padding, dilation, groups,
                                        input_row0, input_height, r0, r1);
  TORCH_CHECK(out.sizes() == y.sizes(), "conv2d_rows.out: out has sizes ", out.sizes(),
              ", the result has ", y.sizes());
  out.copy_(y);
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv2d_rows_backward_cuda(
    const at::Tensor& grad_in, const at::Tensor& input_in, const at::Tensor& weight_in,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
    int64_t input_row0, int64_t input_height, int64_t r0, int64_t r1,
    std::array<bool, 3> output_mask) {
  const int64_t out_w =
      detail::check_conv2d_rows_args("_conv2d_rows_backward", input_in, weight_in, at::Tensor(),
                                     stride, padding, dilation, groups, input_row0, input_height,
                                     r0, r1);
  check_cuda("_conv2d_rows_backward", input_in);
  detail::check_conv2d_rows_grad(grad_in, input_in,
                                 {input_in.size(0), weight_in.size(0), r1 - r0, out_w});
  const c10::cuda::CUDAGuard guard(input_in.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const at::Tensor grad = grad_in.contiguous();
  const at::Tensor input = input_in.contiguous();
  const at::Tensor weight = weight_in.contiguous();
  at::Tensor gi = output_mask[0] ? at::empty(input.sizes(), input.options()) : at::Tensor();
  at::Tensor gw = output_mask[1] ? at::empty(weight.sizes(), weight.options()) : at::Tensor();
  at::Tensor gb = output_mask[2] ? at::empty({weight.size(0)}, weight.options()) : at::Tensor();
  if (r0 == r1) {
    for (at::Tensor* t : {&gi, &gw, &gb}) {
      if (t->defined()) t->zero_();
    }
    return {gi, gw, gb};
  }
  const auto s = shape_of(input, weight, stride, padding, dilation, groups, input_row0,
                          input_height, r0, r1, out_w);
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "conv2d_rows_backward_cuda", [&] {
    const scalar_t* g = grad.data_ptr<scalar_t>();
    if (gi.defined()) {
      C10_CUDA_CHECK(cuda::launch_conv2d_rows_grad_input<scalar_t>(
          g, weight.data_ptr<scalar_t>(), s, gi.data_ptr<scalar_t>(), stream));
    }
    if (gw.defined()) {
      C10_CUDA_CHECK(cuda::launch_conv2d_rows_grad_weight<scalar_t>(
          g, input.data_ptr<scalar_t>(), s, gw.data_ptr<scalar_t>(), stream));
    }
    if (gb.defined()) {
      C10_CUDA_CHECK(
          cuda::launch_conv2d_rows_grad_bias<scalar_t>(g, s, gb.data_ptr<scalar_t>(), stream));
    }
  });
  return {gi, gw, gb};
}

}  // namespace

TORCH_LIBRARY_IMPL(neuroflux, CUDA, m) {
  m.impl("conv2d_rows", &conv2d_rows_cuda);
  m.impl("conv2d_rows.out", &conv2d_rows_out_cuda);
  m.impl("_conv2d_rows_backward", &conv2d_rows_backward_cuda);
}

}  // namespace neuroflux::ops
