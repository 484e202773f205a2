// CUDA kernels of conv2d_rows: raw pointers and a cudaStream_t, no LibTorch, so
// conv2d_rows_kernels.cu also compiles standalone with nvcc (the CI compile check on machines
// without a GPU). The LibTorch side is cuda/conv2d_rows_cuda.cpp.
//
// Direct convolution over a band: every output element of rows [r0, r1) sums its window, reading
// input rows from the band and treating rows outside [0, height) (the map's true edges) and
// columns outside [0, W) as zero, per rows::input_row_of in conv2d_rows_logic.h, the same row
// arithmetic the CPU op and the executor use. The input gradient gathers per input element with
// rows::output_row_of; the weight gradient reduces per weight element. These are plain,
// memory-bound kernels meant for correctness on any GPU; where cuDNN is available the band can
// equally go through at::convolution as on the CPU.
//
// Element types: float and double. Tensors are contiguous NCHW:
//   input  (N, C, band_rows, W) holding map rows [input_row0, input_row0 + band_rows)
//   weight (Cout, C / groups, kH, kW)
//   output (N, Cout, r1 - r0, Wout)
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace neuroflux::ops::cuda {

struct RowsConvShape {
  int64_t batch, in_channels, band_rows, width;           // input band
  int64_t out_channels, kernel_h, kernel_w;                // weight
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
  int64_t input_row0, input_height;                        // where the band sits in its map
  int64_t r0, r1, out_width;                               // output rows computed
};

template <typename T>
cudaError_t launch_conv2d_rows_forward(const T* input, const T* weight, const T* bias,
                                       const RowsConvShape& s, T* output, cudaStream_t stream);

/// grad_input has the band's shape; rows no output row of [r0, r1) reads get 0.
template <typename T>
cudaError_t launch_conv2d_rows_grad_input(const T* grad_output, const T* weight,
                                          const RowsConvShape& s, T* grad_input,
                                          cudaStream_t stream);

template <typename T>
cudaError_t launch_conv2d_rows_grad_weight(const T* grad_output, const T* input,
                                           const RowsConvShape& s, T* grad_weight,
                                           cudaStream_t stream);

template <typename T>
cudaError_t launch_conv2d_rows_grad_bias(const T* grad_output, const RowsConvShape& s,
                                         T* grad_bias, cudaStream_t stream);

}  // namespace neuroflux::ops::cuda
