// Helpers shared by the bitmap operator tests.
#pragma once

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <vector>

namespace neuroflux::test {

/// Every dtype the bitmap operators take.
inline const std::vector<at::ScalarType> kBitmapDtypes{at::kFloat, at::kDouble, at::kHalf,
                                                      at::kBFloat16};

/// The tensor's elements as same-width integers (a view), to compare bit patterns.
inline at::Tensor bit_view(const at::Tensor& t) {
  switch (t.element_size()) {
    case 2:
      return t.view(at::kShort);
    case 4:
      return t.view(at::kInt);
    case 8:
      return t.view(at::kLong);
    default:
      TORCH_CHECK(false, "bit_view: unexpected element size ", t.element_size());
  }
}

/// Same sizes, same dtype and the same bits in every element (so -0.0 != 0.0, NaN == NaN).
inline bool bits_equal(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes() || a.scalar_type() != b.scalar_type()) return false;
  return torch::equal(bit_view(a.cpu()), bit_view(b.cpu()));
}

/// Gradients compared bit for bit; both undefined counts as equal.
inline bool grads_equal(const at::Tensor& a, const at::Tensor& b) {
  if (!a.defined() || !b.defined()) return a.defined() == b.defined();
  return bits_equal(a, b);
}

/// The mask bitmap_pack must produce, built independently with tensor ops: bit i of word w set
/// iff element 32w + i (row-major) has a non-zero bit pattern.
inline at::Tensor expected_mask(const at::Tensor& x) {
  const at::Tensor nonzero = bit_view(x.contiguous().reshape({-1})) != 0;
  const int64_t n = x.numel();
  const int64_t words = (n + 31) / 32;
  at::Tensor padded = torch::zeros({words * 32}, torch::kLong);
  padded.slice(0, 0, n).copy_(nonzero);
  const at::Tensor weights = torch::pow(torch::full({32}, 2, torch::kLong), torch::arange(32));
  return (padded.reshape({words, 32}) * weights).sum(1).to(torch::kInt);  // wraps past 2^31
}

/// Random normal values with about `sparsity` of them replaced by +0.0, seeded.
inline at::Tensor random_sparse(at::IntArrayRef sizes, double sparsity, at::ScalarType dtype,
                                uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  const auto opts = torch::TensorOptions().dtype(torch::kDouble);
  const at::Tensor values = at::randn(sizes, gen, opts);
  const at::Tensor zero = at::rand(sizes, gen, opts) < sparsity;
  return torch::where(zero, torch::zeros_like(values), values).to(dtype);
}

}  // namespace neuroflux::test
