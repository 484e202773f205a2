// Bitmap-compressed activations (after BitTrain): a post-ReLU tensor kept for the backward pass as
// a 1-bit mask plus its non-zero values instead of dense, and given back bit-exactly when needed.
//
//   auto [mask, values] = neuroflux::ops::bitmap_pack(x);        // x: float32/64, float16, bf16
//   at::Tensor y = neuroflux::ops::bitmap_unpack(mask, values, x.sizes());   // y equals x bit for
//   bit
//
// Layout: `mask` is a 1-D int32 tensor of ceil(numel / 32) words, bit i of word w set iff element
// 32 w + i (row-major order) is non-zero; `values` is a 1-D tensor of the non-zero elements in
// element order. At sparsity s that is (1/32 + (1 - s)) of dense fp32. Zero is decided on the bit
// pattern, so -0.0 and NaN are kept as values and the round trip is exact.
//
// The layers built on these operators (neuroflux/models/bitmap_layers.h) are drop-in
// replacements that store less for backward; their forward results and gradients are
// bit-identical to the dense ATen layers':
//   BitmapReLU        relu that keeps only the mask of what it let through (1 bit per element).
//   PackedConv2d      a torch::nn::Conv2d (same options, parameters and state dict) that keeps
//                     its input packed; meant for inputs that are ReLU (or ReLU + pool) outputs.
//   PackedMaxPool2d   a torch::nn::MaxPool2d that keeps its input packed and recomputes the
//                     argmax positions in backward.
// All three refuse double backward (a gradient of their gradient) with a clear error.
// The operators are also registered with the dispatcher as neuroflux::bitmap_pack, ...; from
// Python they are torch.ops.neuroflux.* after torch.ops.load_library("libneuroflux.so").
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <tuple>

namespace neuroflux::ops {

// ---- Functional layer ----

/// Packs `x` (any shape; non-contiguous input is first copied to a contiguous temporary) into
/// (mask, values). float32, float64, float16 and bfloat16; CPU, and CUDA when built with it.
std::tuple<at::Tensor, at::Tensor> bitmap_pack(const at::Tensor& x);

/// The contiguous tensor of shape `sizes` and values' dtype that `mask` and `values` encode.
/// Checks that mask has ceil(prod(sizes) / 32) words and as many set bits as values has elements.
at::Tensor bitmap_unpack(const at::Tensor& mask, const at::Tensor& values, at::IntArrayRef sizes);

/// Number of mask words for `numel` elements: ceil(numel / 32).
int64_t bitmap_mask_words(int64_t numel);

/// Bytes a packed tensor occupies: mask words plus values.
int64_t bitmap_packed_bytes(const at::Tensor& mask, const at::Tensor& values);

/// relu(x); for backward it saves only the 1-bit mask of the elements it kept.
at::Tensor bitmap_relu(const at::Tensor& x);

/// at::conv2d(input, weight, bias, ...) that saves `input` packed for the weight gradient.
/// `input` is (N, C, H, W) or unbatched (C, H, W); `bias` may be undefined.
at::Tensor packed_conv2d(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                         at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                         int64_t groups);

/// at::max_pool2d that saves its input packed and recomputes the argmax in backward.
at::Tensor packed_max_pool2d(const at::Tensor& x, at::IntArrayRef kernel_size,
                             at::IntArrayRef stride, at::IntArrayRef padding,
                             at::IntArrayRef dilation, bool ceil_mode);

}  // namespace neuroflux::ops
