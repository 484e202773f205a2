// Operator arguments decoded from fuzz input, front to back (so tests/fuzz/write_seeds.cpp can
// write meaningful seeds with TensorInputWriter): small integers, arbitrary int64 values and
// tensors of any dtype, rank and layout. Reading past the end gives zeros.
//
// A tensor is: dtype byte (index into kTensorDtypes), rank byte (0-4), one size byte per dim, a
// layout byte (bit 0: a strided view instead of a contiguous tensor, bit 1: the first size byte of
// 0xff is read as 2^40, so a tensor with a zero dim can have a huge other dim without memory), then
// its element bytes. Elements are raw bits (NaN, -0.0 and subnormals included) or, for ops whose
// result is compared against ATen's in floating point, small values (int8 / 16).
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace neuroflux::fuzz {

inline const std::vector<at::ScalarType>& tensor_dtypes() {
  static const std::vector<at::ScalarType> dtypes{at::kFloat, at::kDouble, at::kHalf,
                                                  at::kBFloat16, at::kInt, at::kLong,
                                                  at::kByte, at::kBool};
  return dtypes;
}

/// The most elements a decoded tensor holds: enough for every code path, cheap per input.
constexpr int64_t kMaxTensorElements = 4096;

enum class Elements { kRawBits, kSmallValues };

class TensorInput {
 public:
  TensorInput(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}

  uint8_t byte() { return p_ < end_ ? *p_++ : 0; }
  int64_t int64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t{byte()} << (8 * i);
    int64_t out;
    std::memcpy(&out, &v, sizeof out);
    return out;
  }
  /// Up to `max_count` int64 values (a count byte, then the values): stride, padding, sizes.
  std::vector<int64_t> int64_list(int max_count) {
    const int count = byte() % (max_count + 1);
    std::vector<int64_t> out;
    for (int i = 0; i < count; ++i) out.push_back(int64());
    return out;
  }

  at::Tensor tensor(Elements elements) {
    const at::ScalarType dtype = tensor_dtypes()[byte() % tensor_dtypes().size()];
    const int rank = byte() % 5;
    std::vector<uint8_t> size_bytes;
    for (int d = 0; d < rank; ++d) size_bytes.push_back(byte());
    const uint8_t layout = byte();
    std::vector<int64_t> sizes;
    bool has_zero = false, has_huge = false;
    for (uint8_t b : size_bytes) {
      // One huge dim at most: ATen refuses sizes whose running product overflows, even when a
      // zero comes later, and this builds the harness's own arguments, which must exist.
      const bool huge = (layout & 2) != 0 && b == 0xff && !has_huge;
      sizes.push_back(huge ? (int64_t{1} << 40) : b % 17);
      has_huge = has_huge || huge;
      has_zero = has_zero || sizes.back() == 0;
    }
    int64_t numel = 1;
    for (int64_t& s : sizes) {
      if (has_zero) continue;
      if (numel * s > kMaxTensorElements) s = 1;  // keep it small; the rank stays
      numel *= s;
    }
    if (has_zero) numel = 0;
    const bool strided = (layout & 1) != 0 && rank > 0;
    std::vector<int64_t> alloc = sizes;
    if (strided) alloc.back() = alloc.back() * 2;  // every other element: a non-contiguous view
    at::Tensor t = at::zeros(alloc, at::TensorOptions().dtype(dtype));
    if (strided) t = t.slice(rank - 1, 0, alloc.back(), 2);
    if (numel > 0) fill(t, elements);
    return t;
  }

 private:
  void fill(at::Tensor& t, Elements elements) {
    at::Tensor dense = at::empty(t.sizes(), t.options());
    const int64_t bytes = dense.numel() * static_cast<int64_t>(dense.element_size());
    auto* out = static_cast<uint8_t*>(dense.data_ptr());
    if (elements == Elements::kRawBits || !at::isFloatingType(t.scalar_type())) {
      for (int64_t i = 0; i < bytes; ++i) out[i] = byte();
      if (t.scalar_type() == at::kBool)
        for (int64_t i = 0; i < bytes; ++i) out[i] &= 1;  // other bytes are no bool
    } else {
      at::Tensor small = at::empty({dense.numel()}, at::kChar);
      auto* s = small.data_ptr<int8_t>();
      for (int64_t i = 0; i < dense.numel(); ++i) s[i] = static_cast<int8_t>(byte());
      dense.copy_(small.to(at::kFloat).div_(16).view(t.sizes()));
    }
    t.copy_(dense);
  }

  const uint8_t* p_;
  const uint8_t* end_;
};

/// Writes what TensorInput reads (for the seed corpora).
class TensorInputWriter {
 public:
  void byte(uint8_t b) { out_.push_back(b); }
  void int64(int64_t v) {
    uint64_t u;
    std::memcpy(&u, &v, sizeof u);
    for (int i = 0; i < 8; ++i) byte(static_cast<uint8_t>(u >> (8 * i)));
  }
  void int64_list(const std::vector<int64_t>& values) {
    byte(static_cast<uint8_t>(values.size()));
    for (int64_t v : values) int64(v);
  }
  /// A contiguous tensor of `t`'s dtype and sizes (each below 17) and contents; `elements` must
  /// match what the harness reads.
  void tensor(const at::Tensor& t, Elements elements) {
    const auto& dtypes = tensor_dtypes();
    byte(static_cast<uint8_t>(std::find(dtypes.begin(), dtypes.end(), t.scalar_type()) -
                              dtypes.begin()));
    byte(static_cast<uint8_t>(t.dim()));
    for (int64_t s : t.sizes()) byte(static_cast<uint8_t>(s));
    byte(0);
    const at::Tensor c = t.contiguous();
    if (elements == Elements::kSmallValues && at::isFloatingType(t.scalar_type())) {
      const at::Tensor q = c.to(at::kFloat).mul(16).round().clamp(-128, 127).to(at::kChar);
      for (int64_t i = 0; i < q.numel(); ++i) byte(static_cast<uint8_t>(q.data_ptr<int8_t>()[i]));
    } else {
      const auto* p = static_cast<const uint8_t*>(c.data_ptr());
      for (int64_t i = 0; i < c.numel() * static_cast<int64_t>(c.element_size()); ++i) byte(p[i]);
    }
  }
  const std::vector<uint8_t>& bytes() const { return out_; }

 private:
  std::vector<uint8_t> out_;
};

}  // namespace neuroflux::fuzz
