// A unit's convolutions as an explicit im2col and one matrix product each: the "im2col" unit
// mode (local/unit_step.h).
//
// Why: on small maps a convolution's backward in ATen (oneDNN here) holds two weight-sized
// buffers at its peak, the new weight gradient and a second one of its own: for vgg11's
// 128-to-128 3x3 units that is 1,180,672 of a step's 1,221,960 transient bytes at batch 8
// (results/RESULTS.md). As a product of [out, C*k*k] weights and [C*k*k, N*L] columns, the
// backward allocates the weight gradient once, plus the columns, which grow with the batch and
// the map: the mode pays at small batches on small maps, where a unit's floor is set, and the
// planner takes it only where its measured step fits and plain's does not.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/modules/container/sequential.h>

namespace neuroflux {

/// Whether `unit` is a flat Sequential whose Conv2d layers are all direct children (no conv
/// nested in a block), at least one of them, each with zero padding, one group and not
/// transposed: the layers im2col_forward runs as products. Residual and inverted-residual
/// units are not.
bool runs_im2col(const torch::nn::Sequential& unit);

/// The unit's forward, recording for backward, with every Conv2d as im2col + one matrix product
/// and every other layer as itself. Equal to unit->forward(input) up to float rounding.
at::Tensor im2col_forward(const torch::nn::Sequential& unit, const at::Tensor& input);

}  // namespace neuroflux
