// CPU kernels of the bitmap operators. The per-word logic lives in bitmap_logic.h (shared with
// CUDA); this file only splits the work. The tensor is cut into chunks of kChunkWords mask words;
// pack and unpack are two passes over the chunks with at::parallel_for:
//   1. per chunk, build (pack) or read (unpack) the mask words and count the non-zeros,
//   2. an exclusive prefix sum over the chunk counts gives each chunk's first value,
//   3. per chunk, scatter: compact the non-zeros into values (pack) or expand them (unpack).
// Chunk offsets come from the scan, never from a shared counter, so values are always in element
// order and the result does not depend on the thread count.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "csrc/bitmap/bitmap.h"
#include "csrc/bitmap/bitmap_logic.h"

namespace neuroflux::ops {
namespace {

using namespace bitmap;

// 2048 words = 65536 elements (256 KiB of fp32) per chunk: large enough that scheduling costs
// nothing, small enough that 16M elements give every core many chunks.
constexpr int64_t kChunkWords = 2048;
// Words with at most this many set bits are compacted bit by bit (cheaper than 32 branch-free
// stores when few bits are set).
constexpr int kSparseWordBits = 10;

template <typename T>
struct FormatOf;
template <>
struct FormatOf<float> {
  using type = Float32Bits;
};
template <>
struct FormatOf<double> {
  using type = Float64Bits;
};
template <>
struct FormatOf<at::Half> {
  using type = Float16Bits;
};
template <>
struct FormatOf<at::BFloat16> {
  using type = BFloat16Bits;
};

int64_t num_chunks(int64_t words) { return (words + kChunkWords - 1) / kChunkWords; }

template <typename scalar_t>
const typename FormatOf<scalar_t>::type::Bits* bits_of(const at::Tensor& t) {
  return reinterpret_cast<const typename FormatOf<scalar_t>::type::Bits*>(t.data_ptr<scalar_t>());
}
template <typename scalar_t>
typename FormatOf<scalar_t>::type::Bits* mutable_bits_of(at::Tensor& t) {
  return reinterpret_cast<typename FormatOf<scalar_t>::type::Bits*>(t.data_ptr<scalar_t>());
}
uint32_t* words_of(at::Tensor& mask) {
  return reinterpret_cast<uint32_t*>(mask.data_ptr<int32_t>());
}
const uint32_t* words_of(const at::Tensor& mask) {
  return reinterpret_cast<const uint32_t*>(mask.data_ptr<int32_t>());
}

std::tuple<at::Tensor, at::Tensor> bitmap_pack_cpu(const at::Tensor& input) {
  detail::check_floating(input, "bitmap_pack", "x");
  TORCH_CHECK(input.device().is_cpu(), "bitmap_pack (CPU): x is on ", input.device());
  // The mask follows row-major element order, so a non-contiguous input (a transpose, a slice)
  // is copied to a contiguous temporary first; it is freed when this call returns.
  const at::Tensor x = input.contiguous();
  const int64_t n = x.numel();
  const int64_t words = mask_words(n);
  at::Tensor mask = at::empty({words}, x.options().dtype(at::kInt));
  at::Tensor values;
  if (n == 0) return {mask, at::empty({0}, x.options())};

  const int64_t chunks = num_chunks(words);
  std::vector<int64_t> offsets(chunks + 1, 0);  // offsets[c + 1] = count of chunk c, then scanned
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, x.scalar_type(), "bitmap_pack_cpu", [&] {
        using Fmt = typename FormatOf<scalar_t>::type;
        const auto* xb = bits_of<scalar_t>(x);
        uint32_t* mb = words_of(mask);
        at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
          for (int64_t c = c0; c < c1; ++c) {
            const int64_t w1 = std::min(words, (c + 1) * kChunkWords);
            int64_t count = 0;
            for (int64_t w = c * kChunkWords; w < w1; ++w) {
              mb[w] = nonzero_word<Fmt>(xb + w * kWordBits, word_elements(w, n));
              count += popcount(mb[w]);
            }
            offsets[c + 1] = count;
          }
        });
        std::partial_sum(offsets.begin(), offsets.end(), offsets.begin());
        values = at::empty({offsets[chunks]}, x.options());
        auto* vb = mutable_bits_of<scalar_t>(values);
        at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
          for (int64_t c = c0; c < c1; ++c) {
            const int64_t w1 = std::min(words, (c + 1) * kChunkWords);
            int64_t k = offsets[c];
            const int64_t end = offsets[c + 1];
            for (int64_t w = c * kChunkWords; w < w1; ++w) {
              const uint32_t word = mb[w];
              const int count = popcount(word);
              // Branch-free for dense full words, as long as the scratch slot it writes at
              // vb[k + count] is a later value of this chunk; one step per set bit otherwise.
              if (count > kSparseWordBits && k + count < end && word_elements(w, n) == kWordBits) {
                k += compact_word_unguarded(word, xb + w * kWordBits, vb + k);
              } else {
                k += compact_word(word, xb + w * kWordBits, vb + k);
              }
            }
            TORCH_INTERNAL_ASSERT(k == end);
          }
        });
      });
  return {mask, values};
}

at::Tensor bitmap_unpack_cpu(const at::Tensor& mask_in, const at::Tensor& values_in,
                             at::IntArrayRef sizes) {
  const int64_t n = detail::check_unpack_args(mask_in, values_in, sizes);
  TORCH_CHECK(mask_in.device().is_cpu(), "bitmap_unpack (CPU): mask is on ", mask_in.device());
  const at::Tensor mask = mask_in.contiguous();
  const at::Tensor values = values_in.contiguous();
  const int64_t words = mask.numel();
  const int64_t chunks = num_chunks(words);
  const uint32_t* mb = words_of(mask);

  // Pass 1 reads only the mask (1/32 of the dense bytes): set bits per chunk.
  std::vector<int64_t> offsets(chunks + 1, 0);
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t w1 = std::min(words, (c + 1) * kChunkWords);
      int64_t count = 0;
      for (int64_t w = c * kChunkWords; w < w1; ++w) count += popcount(mb[w]);
      offsets[c + 1] = count;
    }
  });
  std::partial_sum(offsets.begin(), offsets.end(), offsets.begin());
  const bool tail_clear = words == 0 || (mb[words - 1] & tail_bits(n)) == 0;
  detail::check_unpack_counts(offsets[chunks], tail_clear, values, n);

  at::Tensor out = at::empty(sizes, values.options());
  if (n == 0) return out;
  const int64_t nnz = values.numel();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, values.scalar_type(), "bitmap_unpack_cpu", [&] {
        const auto* vb = bits_of<scalar_t>(values);
        auto* ob = mutable_bits_of<scalar_t>(out);
        at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
          for (int64_t c = c0; c < c1; ++c) {
            const int64_t w1 = std::min(words, (c + 1) * kChunkWords);
            int64_t k = offsets[c];
            for (int64_t w = c * kChunkWords; w < w1; ++w) {
              const uint32_t word = mb[w];
              const int elements = word_elements(w, n);
              // Branch-free for full words whose speculative read values[k + count] exists.
              if (elements == kWordBits && k + popcount(word) < nnz) {
                k += expand_word_unguarded(word, vb + k, ob + w * kWordBits);
              } else {
                k += expand_word(word, vb + k, ob + w * kWordBits, elements);
              }
            }
          }
        });
      });
  return out;
}

std::tuple<at::Tensor, at::Tensor> bitmap_relu_forward_cpu(const at::Tensor& input) {
  detail::check_floating(input, "bitmap_relu", "x");
  const at::Tensor x = input.contiguous();
  const int64_t n = x.numel();
  const int64_t words = mask_words(n);
  at::Tensor y = at::empty(x.sizes(), x.options());
  at::Tensor mask = at::empty({words}, x.options().dtype(at::kInt));
  if (n == 0) return {y, mask};
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, x.scalar_type(), "bitmap_relu_cpu", [&] {
        using Fmt = typename FormatOf<scalar_t>::type;
        const auto* xb = bits_of<scalar_t>(x);
        auto* yb = mutable_bits_of<scalar_t>(y);
        uint32_t* mb = words_of(mask);
        at::parallel_for(0, words, kChunkWords, [&](int64_t w0, int64_t w1) {
          for (int64_t w = w0; w < w1; ++w) {
            mb[w] = relu_word<Fmt>(xb + w * kWordBits, yb + w * kWordBits, word_elements(w, n));
          }
        });
      });
  return {y, mask};
}

at::Tensor bitmap_relu_backward_cpu(const at::Tensor& grad_output, const at::Tensor& mask_in) {
  detail::check_relu_mask(grad_output, mask_in);
  const at::Tensor grad = grad_output.contiguous();
  const at::Tensor mask = mask_in.contiguous();
  const int64_t n = grad.numel();
  at::Tensor out = at::empty(grad.sizes(), grad.options());
  if (n == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, grad.scalar_type(), "bitmap_relu_backward_cpu", [&] {
        using Fmt = typename FormatOf<scalar_t>::type;
        const auto* gb = bits_of<scalar_t>(grad);
        auto* ob = mutable_bits_of<scalar_t>(out);
        const uint32_t* mb = words_of(mask);
        at::parallel_for(0, mask.numel(), kChunkWords, [&](int64_t w0, int64_t w1) {
          for (int64_t w = w0; w < w1; ++w) {
            mask_word<Fmt>(mb[w], gb + w * kWordBits, ob + w * kWordBits, word_elements(w, n));
          }
        });
      });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(neuroflux, CPU, m) {
  m.impl("bitmap_pack", &bitmap_pack_cpu);
  m.impl("bitmap_unpack", &bitmap_unpack_cpu);
  m.impl("_bitmap_relu_forward", &bitmap_relu_forward_cpu);
  m.impl("_bitmap_relu_backward", &bitmap_relu_backward_cpu);
}

}  // namespace neuroflux::ops
