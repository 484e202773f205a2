// conv2d_rows: output rows [r0, r1) of a convolution computed from a band of its input rows, with
// the zero padding applied only at the map's true top and bottom edges, so a conv layer can run
// band by band (the row-centric executor, <neuroflux/rowcentric/row_centric.h>, is built on it).
//
//   at::Tensor y = neuroflux::ops::conv2d_rows(band, weight, bias, stride, padding, dilation,
//                                              groups, band_row0, map_height, r0, r1);
//
// It is registered with the dispatcher as neuroflux::conv2d_rows (torch.ops.neuroflux.conv2d_rows
// from Python after torch.ops.load_library("libneuroflux.so")); CPU, and CUDA when built with it.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace neuroflux::ops {

/// Output rows [r0, r1) of conv2d(input_map, weight, bias, stride, padding, dilation, groups),
/// where `input` (N, C, h, W) holds rows [input_row0, input_row0 + h) of an input map of
/// `input_height` rows; it must hold every row the output rows read. Returns (N, Cout, r1 - r0,
/// Wout). Differentiable in input, weight and bias (the input gradient has input's shape).
at::Tensor conv2d_rows(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                       at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                       int64_t groups, int64_t input_row0, int64_t input_height, int64_t r0,
                       int64_t r1);

/// conv2d_rows written into `out` (N, Cout, r1 - r0, Wout), e.g. a slice of a preallocated map.
/// Not differentiable (for no-grad forward passes).
at::Tensor& conv2d_rows_out(const at::Tensor& input, const at::Tensor& weight,
                            const at::Tensor& bias, at::IntArrayRef stride,
                            at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                            int64_t input_row0, int64_t input_height, int64_t r0, int64_t r1,
                            at::Tensor& out);

}  // namespace neuroflux::ops
