// CUDA implementations of the bitmap operators: the LibTorch side of cuda/bitmap_kernels.cu.
// Compiled only when LibTorch has CUDA (NEUROFLUX_WITH_CUDA); tested by the [cuda] tests, which
// run where a GPU exists (scripts/gpu-check.sh).
//
// Every wrapper follows one order: check the arguments and devices, CUDAGuard, the current
// stream, return early on empty input, AT_DISPATCH, launch, check the launch.
//
// pack and unpack must know the number of non-zeros on the host (to allocate `values`, or to
// check it against `values`), so each synchronises the stream once, after the counting pass, to
// read that total: 8 or 16 bytes copied back.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "csrc/bitmap/bitmap.h"
#include "csrc/bitmap/bitmap_logic.h"
#include "csrc/bitmap/cuda/bitmap_kernels.cuh"

namespace neuroflux::ops {
namespace {

// ATen's element types -> the CUDA ones the kernels are instantiated for (same bits).
template <typename T>
struct CudaType {
  using type = T;
};
template <>
struct CudaType<at::Half> {
  using type = __half;
};
template <>
struct CudaType<at::BFloat16> {
  using type = __nv_bfloat16;
};

template <typename scalar_t>
const typename CudaType<scalar_t>::type* cuda_ptr(const at::Tensor& t) {
  return reinterpret_cast<const typename CudaType<scalar_t>::type*>(t.data_ptr<scalar_t>());
}
template <typename scalar_t>
typename CudaType<scalar_t>::type* cuda_mutable_ptr(at::Tensor& t) {
  return reinterpret_cast<typename CudaType<scalar_t>::type*>(t.data_ptr<scalar_t>());
}
const uint32_t* words_of(const at::Tensor& mask) {
  return reinterpret_cast<const uint32_t*>(mask.data_ptr<int32_t>());
}
uint32_t* words_of(at::Tensor& mask) {
  return reinterpret_cast<uint32_t*>(mask.data_ptr<int32_t>());
}

std::tuple<at::Tensor, at::Tensor> bitmap_pack_cuda(const at::Tensor& input) {
  detail::check_floating(input, "bitmap_pack", "x");
  TORCH_CHECK(input.is_cuda(), "bitmap_pack (CUDA): x is on ", input.device());
  const c10::cuda::CUDAGuard guard(input.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  // Row-major element order: a non-contiguous input is copied to a contiguous temporary first.
  const at::Tensor x = input.contiguous();
  const int64_t n = x.numel();
  at::Tensor mask = at::empty({bitmap::mask_words(n)}, x.options().dtype(at::kInt));
  if (n == 0) return {mask, at::empty({0}, x.options())};

  const int64_t tiles = cuda::num_tiles(n);
  at::Tensor scratch = at::empty({tiles + 1}, x.options().dtype(at::kLong));
  at::Tensor values;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, x.scalar_type(), "bitmap_pack_cuda", [&] {
        C10_CUDA_CHECK(cuda::launch_bitmap_pack_count(cuda_ptr<scalar_t>(x), n, words_of(mask),
                                                      scratch.data_ptr<int64_t>(), stream));
        const int64_t nnz = scratch[tiles].item<int64_t>();  // synchronises the stream
        values = at::empty({nnz}, x.options());
        if (nnz == 0) return;
        C10_CUDA_CHECK(cuda::launch_bitmap_pack_scatter(
            cuda_ptr<scalar_t>(x), n, words_of(mask), scratch.data_ptr<int64_t>(),
            cuda_mutable_ptr<scalar_t>(values), stream));
      });
  return {mask, values};
}

at::Tensor bitmap_unpack_cuda(const at::Tensor& mask_in, const at::Tensor& values_in,
                              at::IntArrayRef sizes) {
  const int64_t n = detail::check_unpack_args(mask_in, values_in, sizes);
  TORCH_CHECK(mask_in.is_cuda(), "bitmap_unpack (CUDA): mask is on ", mask_in.device());
  const c10::cuda::CUDAGuard guard(mask_in.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const at::Tensor mask = mask_in.contiguous();
  const at::Tensor values = values_in.contiguous();
  at::Tensor out = at::empty(sizes, values.options());
  if (n == 0) {
    detail::check_unpack_counts(0, true, values, n);
    return out;
  }

  const int64_t tiles = cuda::num_tiles(n);
  at::Tensor scratch = at::empty({tiles + 2}, values.options().dtype(at::kLong));
  C10_CUDA_CHECK(
      cuda::launch_bitmap_unpack_count(words_of(mask), n, scratch.data_ptr<int64_t>(), stream));
  const at::Tensor totals = scratch.slice(0, tiles, tiles + 2).cpu();  // synchronises the stream
  detail::check_unpack_counts(totals[0].item<int64_t>(), totals[1].item<int64_t>() == 0, values, n);
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, values.scalar_type(), "bitmap_unpack_cuda", [&] {
        C10_CUDA_CHECK(cuda::launch_bitmap_unpack_scatter(
            words_of(mask), cuda_ptr<scalar_t>(values), n, scratch.data_ptr<int64_t>(),
            cuda_mutable_ptr<scalar_t>(out), stream));
      });
  return out;
}

std::tuple<at::Tensor, at::Tensor> bitmap_relu_forward_cuda(const at::Tensor& input) {
  detail::check_floating(input, "bitmap_relu", "x");
  TORCH_CHECK(input.is_cuda(), "bitmap_relu (CUDA): x is on ", input.device());
  const c10::cuda::CUDAGuard guard(input.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const at::Tensor x = input.contiguous();
  const int64_t n = x.numel();
  at::Tensor y = at::empty(x.sizes(), x.options());
  at::Tensor mask = at::empty({bitmap::mask_words(n)}, x.options().dtype(at::kInt));
  if (n == 0) return {y, mask};
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, x.scalar_type(), "bitmap_relu_cuda", [&] {
        C10_CUDA_CHECK(cuda::launch_bitmap_relu_forward(
            cuda_ptr<scalar_t>(x), n, cuda_mutable_ptr<scalar_t>(y), words_of(mask), stream));
      });
  return {y, mask};
}

at::Tensor bitmap_relu_backward_cuda(const at::Tensor& grad_output, const at::Tensor& mask_in) {
  detail::check_relu_mask(grad_output, mask_in);
  TORCH_CHECK(grad_output.is_cuda(), "_bitmap_relu_backward (CUDA): grad_output is on ",
              grad_output.device());
  const c10::cuda::CUDAGuard guard(grad_output.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const at::Tensor grad = grad_output.contiguous();
  const at::Tensor mask = mask_in.contiguous();
  const int64_t n = grad.numel();
  at::Tensor out = at::empty(grad.sizes(), grad.options());
  if (n == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, grad.scalar_type(), "bitmap_relu_backward_cuda", [&] {
        C10_CUDA_CHECK(cuda::launch_bitmap_relu_backward(
            cuda_ptr<scalar_t>(grad), words_of(mask), n, cuda_mutable_ptr<scalar_t>(out), stream));
      });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(neuroflux, CUDA, m) {
  m.impl("bitmap_pack", &bitmap_pack_cuda);
  m.impl("bitmap_unpack", &bitmap_unpack_cuda);
  m.impl("_bitmap_relu_forward", &bitmap_relu_forward_cuda);
  m.impl("_bitmap_relu_backward", &bitmap_relu_backward_cuda);
}

}  // namespace neuroflux::ops
