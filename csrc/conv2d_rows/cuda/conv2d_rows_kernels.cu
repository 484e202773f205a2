// CUDA kernels of conv2d_rows; see conv2d_rows_kernels.cuh. The row arithmetic (which input row
// an output row reads at a tap, and which output row reads an input row) comes from
// conv2d_rows_logic.h.
#include "csrc/conv2d_rows/cuda/conv2d_rows_kernels.cuh"
#include "csrc/conv2d_rows/conv2d_rows_logic.h"

namespace neuroflux::ops::cuda {
namespace {

constexpr int kThreads = 256;

inline unsigned blocks_for(int64_t n) {
  return static_cast<unsigned>((n + kThreads - 1) / kThreads);
}

__device__ __forceinline__ rows::Window h_window(const RowsConvShape& s) {
  return rows::Window{s.kernel_h, s.stride_h, s.pad_h, s.dil_h};
}
__device__ __forceinline__ rows::Window w_window(const RowsConvShape& s) {
  return rows::Window{s.kernel_w, s.stride_w, s.pad_w, s.dil_w};
}

// One thread per output element (n, co, r, ow), r in [r0, r1).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const T* __restrict__ input, const T* __restrict__ weight,
                   const T* __restrict__ bias, RowsConvShape s, T* __restrict__ output) {
  const int64_t rows_out = s.r1 - s.r0;
  const int64_t total = s.batch * s.out_channels * rows_out * s.out_width;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= total) return;
  const int64_t ow = idx % s.out_width;
  const int64_t r = s.r0 + (idx / s.out_width) % rows_out;
  const int64_t co = (idx / (s.out_width * rows_out)) % s.out_channels;
  const int64_t n = idx / (s.out_width * rows_out * s.out_channels);
  const int64_t cin_g = s.in_channels / s.groups;
  const int64_t c0 = (co / (s.out_channels / s.groups)) * cin_g;
  const rows::Window hw = h_window(s), ww = w_window(s);
  T acc = bias != nullptr ? bias[co] : T(0);
  for (int64_t kh = 0; kh < s.kernel_h; ++kh) {
    const int64_t ih = rows::input_row_of(hw, r, kh);
    if (ih < 0 || ih >= s.input_height) continue;  // the map's own zero padding
    const int64_t band_row = ih - s.input_row0;    // inside the band: checked on the host
    for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
      const int64_t iw = rows::input_row_of(ww, ow, kw);
      if (iw < 0 || iw >= s.width) continue;
      for (int64_t ci = 0; ci < cin_g; ++ci) {
        const T x = input[((n * s.in_channels + c0 + ci) * s.band_rows + band_row) * s.width + iw];
        const T w = weight[((co * cin_g + ci) * s.kernel_h + kh) * s.kernel_w + kw];
        acc += x * w;
      }
    }
  }
  output[idx] = acc;
}

// One thread per band element (n, c, band_row, iw): sums grad_output over the output elements
// whose window covers it.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    grad_input_kernel(const T* __restrict__ grad_output, const T* __restrict__ weight,
                      RowsConvShape s, T* __restrict__ grad_input) {
  const int64_t total = s.batch * s.in_channels * s.band_rows * s.width;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= total) return;
  const int64_t iw = idx % s.width;
  const int64_t ih = s.input_row0 + (idx / s.width) % s.band_rows;
  const int64_t c = (idx / (s.width * s.band_rows)) % s.in_channels;
  const int64_t n = idx / (s.width * s.band_rows * s.in_channels);
  const int64_t cin_g = s.in_channels / s.groups;
  const int64_t cout_g = s.out_channels / s.groups;
  const int64_t g = c / cin_g, ci = c % cin_g;
  const int64_t rows_out = s.r1 - s.r0;
  const rows::Window hw = h_window(s), ww = w_window(s);
  T acc = T(0);
  for (int64_t kh = 0; kh < s.kernel_h; ++kh) {
    const int64_t r = rows::output_row_of(hw, ih, kh);
    if (r < s.r0 || r >= s.r1) continue;
    for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
      const int64_t ow = rows::output_row_of(ww, iw, kw);
      if (ow < 0 || ow >= s.out_width) continue;
      for (int64_t co = g * cout_g; co < (g + 1) * cout_g; ++co) {
        const T go = grad_output[((n * s.out_channels + co) * rows_out + (r - s.r0)) *
                                     s.out_width + ow];
        acc += go * weight[((co * cin_g + ci) * s.kernel_h + kh) * s.kernel_w + kw];
      }
    }
  }
  grad_input[idx] = acc;
}

// One thread per weight element (co, ci, kh, kw): sums over the batch and the band's outputs.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    grad_weight_kernel(const T* __restrict__ grad_output, const T* __restrict__ input,
                       RowsConvShape s, T* __restrict__ grad_weight) {
  const int64_t cin_g = s.in_channels / s.groups;
  const int64_t total = s.out_channels * cin_g * s.kernel_h * s.kernel_w;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= total) return;
  const int64_t kw = idx % s.kernel_w;
  const int64_t kh = (idx / s.kernel_w) % s.kernel_h;
  const int64_t ci = (idx / (s.kernel_w * s.kernel_h)) % cin_g;
  const int64_t co = idx / (s.kernel_w * s.kernel_h * cin_g);
  const int64_t c = (co / (s.out_channels / s.groups)) * cin_g + ci;
  const int64_t rows_out = s.r1 - s.r0;
  const rows::Window hw = h_window(s), ww = w_window(s);
  T acc = T(0);
  for (int64_t n = 0; n < s.batch; ++n) {
    for (int64_t r = s.r0; r < s.r1; ++r) {
      const int64_t ih = rows::input_row_of(hw, r, kh);
      if (ih < 0 || ih >= s.input_height) continue;
      const T* x_row = input + ((n * s.in_channels + c) * s.band_rows + (ih - s.input_row0)) *
                                   s.width;
      const T* g_row = grad_output + ((n * s.out_channels + co) * rows_out + (r - s.r0)) *
                                         s.out_width;
      for (int64_t ow = 0; ow < s.out_width; ++ow) {
        const int64_t iw = rows::input_row_of(ww, ow, kw);
        if (iw >= 0 && iw < s.width) acc += x_row[iw] * g_row[ow];
      }
    }
  }
  grad_weight[idx] = acc;
}

// One block per output channel: a shared-memory tree sum over the batch and the band.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    grad_bias_kernel(const T* __restrict__ grad_output, RowsConvShape s, T* __restrict__ grad_bias) {
  __shared__ T partial[kThreads];
  const int64_t co = blockIdx.x;
  const int64_t plane = (s.r1 - s.r0) * s.out_width;
  T acc = T(0);
  for (int64_t i = threadIdx.x; i < s.batch * plane; i += blockDim.x) {
    const int64_t n = i / plane;
    acc += grad_output[(n * s.out_channels + co) * plane + i % plane];
  }
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int step = kThreads / 2; step > 0; step /= 2) {
    if (threadIdx.x < step) partial[threadIdx.x] += partial[threadIdx.x + step];
    __syncthreads();
  }
  if (threadIdx.x == 0) grad_bias[co] = partial[0];
}

}  // namespace

template <typename T>
cudaError_t launch_conv2d_rows_forward(const T* input, const T* weight, const T* bias,
                                       const RowsConvShape& s, T* output, cudaStream_t stream) {
  const int64_t total = s.batch * s.out_channels * (s.r1 - s.r0) * s.out_width;
  if (total == 0) return cudaSuccess;
  forward_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(input, weight, bias, s, output);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_conv2d_rows_grad_input(const T* grad_output, const T* weight,
                                          const RowsConvShape& s, T* grad_input,
                                          cudaStream_t stream) {
  const int64_t total = s.batch * s.in_channels * s.band_rows * s.width;
  if (total == 0) return cudaSuccess;
  grad_input_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(grad_output, weight, s,
                                                                   grad_input);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_conv2d_rows_grad_weight(const T* grad_output, const T* input,
                                           const RowsConvShape& s, T* grad_weight,
                                           cudaStream_t stream) {
  const int64_t total = s.out_channels * (s.in_channels / s.groups) * s.kernel_h * s.kernel_w;
  if (total == 0) return cudaSuccess;
  grad_weight_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(grad_output, input, s,
                                                                    grad_weight);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_conv2d_rows_grad_bias(const T* grad_output, const RowsConvShape& s,
                                         T* grad_bias, cudaStream_t stream) {
  if (s.out_channels == 0) return cudaSuccess;
  grad_bias_kernel<T><<<static_cast<unsigned>(s.out_channels), kThreads, 0, stream>>>(
      grad_output, s, grad_bias);
  return cudaGetLastError();
}

#define NEUROFLUX_INSTANTIATE_ROWCONV(T)                                                        \
  template cudaError_t launch_conv2d_rows_forward<T>(const T*, const T*, const T*,              \
                                                     const RowsConvShape&, T*, cudaStream_t);   \
  template cudaError_t launch_conv2d_rows_grad_input<T>(const T*, const T*,                     \
                                                        const RowsConvShape&, T*, cudaStream_t); \
  template cudaError_t launch_conv2d_rows_grad_weight<T>(const T*, const T*,                    \
                                                         const RowsConvShape&, T*,              \
                                                         cudaStream_t);                         \
  template cudaError_t launch_conv2d_rows_grad_bias<T>(const T*, const RowsConvShape&, T*,      \
                                                       cudaStream_t);
NEUROFLUX_INSTANTIATE_ROWCONV(float)
NEUROFLUX_INSTANTIATE_ROWCONV(double)
#undef NEUROFLUX_INSTANTIATE_ROWCONV

}  // namespace neuroflux::ops::cuda
