// Per-element and per-word logic of the bitmap operators, written once and used by both the CPU
// kernels (cpu/bitmap_kernel.cpp) and the CUDA kernels (cuda/bitmap_kernels.cu). No LibTorch in
// here: the CUDA kernels include this header and compile standalone with nvcc.
//
// Packed layout of a tensor of n elements, taken in row-major (contiguous) order:
//   mask    ceil(n / 32) 32-bit words (an int32 tensor); bit i of word w is set iff element
//           32 w + i is non-zero. Bits past element n - 1 in the last word are zero.
//   values  the non-zero elements, in element order, same dtype as the input.
// At sparsity s that is n / 8 + (1 - s) n sizeof(T) bytes: (1/32 + (1 - s)) of dense fp32.
//
// "Non-zero" is decided on the bit pattern, not on the value: -0.0 (sign bit only) and NaNs are
// stored as values, so unpack(pack(x)) is bit-identical to x, not merely equal to it. Everything
// here works on the raw bits (uint16 / uint32 / uint64), which is why one body serves float32,
// float64, float16 and bfloat16 on the host and on the device.
#pragma once

#include <cstdint>

// NEUROFLUX_HOST_DEVICE: __host__ __device__ under nvcc, nothing for the host compiler.
#if defined(__CUDACC__)
#define NEUROFLUX_HOST_DEVICE __host__ __device__
#else
#define NEUROFLUX_HOST_DEVICE
#endif
// The per-word helpers sit in the innermost loops; GCC does not always inline them by itself.
#if defined(__CUDACC__)
#define NEUROFLUX_FORCE_INLINE __forceinline__
#elif defined(__GNUC__)
#define NEUROFLUX_FORCE_INLINE inline __attribute__((always_inline))
#else
#define NEUROFLUX_FORCE_INLINE inline
#endif

namespace neuroflux::ops::bitmap {

constexpr int kWordBits = 32;

/// Mask words needed for `n` elements: ceil(n / 32).
NEUROFLUX_HOST_DEVICE constexpr int64_t mask_words(int64_t n) {
  return (n + kWordBits - 1) / kWordBits;
}

/// Elements covered by word `w` of a tensor of `n` elements (32, or fewer for the last word).
NEUROFLUX_HOST_DEVICE NEUROFLUX_FORCE_INLINE int word_elements(int64_t w, int64_t n) {
  const int64_t left = n - w * kWordBits;
  return left < kWordBits ? static_cast<int>(left) : kWordBits;
}

/// Bits of the last word that must be zero: those past element n - 1 (0 when n % 32 == 0).
NEUROFLUX_HOST_DEVICE NEUROFLUX_FORCE_INLINE uint32_t tail_bits(int64_t n) {
  const int used = static_cast<int>(n % kWordBits);
  return used == 0 ? 0u : ~((1u << used) - 1u);
}

NEUROFLUX_HOST_DEVICE NEUROFLUX_FORCE_INLINE int popcount(uint32_t w) {
#if defined(__CUDA_ARCH__)
  return __popc(w);
#elif defined(__POPCNT__)
  return __builtin_popcount(w);
#else
  // SWAR popcount: without -mpopcnt __builtin_popcount is a library call.
  w = w - ((w >> 1) & 0x55555555u);
  w = (w & 0x33333333u) + ((w >> 2) & 0x33333333u);
  w = (w + (w >> 4)) & 0x0f0f0f0fu;
  return static_cast<int>((w * 0x01010101u) >> 24);
#endif
}

NEUROFLUX_HOST_DEVICE NEUROFLUX_FORCE_INLINE int count_trailing_zeros(uint32_t w) {  // w != 0
#if defined(__CUDA_ARCH__)
  return __ffs(static_cast<int>(w)) - 1;
#else
  return __builtin_ctz(w);
#endif
}

/// Position of element `lane` among the non-zeros of its word: the set bits below it.
NEUROFLUX_HOST_DEVICE NEUROFLUX_FORCE_INLINE int rank_in_word(uint32_t word, int lane) {
  return popcount(word & ((1u << lane) - 1u));
}

NEUROFLUX_HOST_DEVICE NEUROFLUX_FORCE_INLINE bool bit_set(uint32_t word, int lane) {
  return ((word >> lane) & 1u) != 0;
}

/// A floating-point format seen as raw bits: the unsigned type of its width, the sign bit and
/// the bit pattern of +infinity (anything of larger magnitude is a NaN).
template <typename BitsT, BitsT kSignBits, BitsT kInfBits>
struct FloatBits {
  using Bits = BitsT;

  /// Packed as a value? Any bit pattern but +0.0 (see the header comment).
  NEUROFLUX_HOST_DEVICE static bool is_nonzero(Bits b) { return b != 0; }

  /// Does relu keep this element (and let its gradient through)? Exactly when !(x <= 0): positive
  /// numbers, +inf and every NaN. This matches ATen, whose relu backward passes the gradient where
  /// the result is not <= 0 (threshold_backward).
  NEUROFLUX_HOST_DEVICE static bool relu_keeps(Bits b) {
    const Bits magnitude = static_cast<Bits>(b & static_cast<Bits>(~kSignBits));
    const bool positive = b != 0 && (b & kSignBits) == 0;
    return positive || magnitude > kInfBits;
  }

  /// `b` where `keep`, +0.0 elsewhere, without a branch.
  NEUROFLUX_HOST_DEVICE static Bits select(bool keep, Bits b) {
    return static_cast<Bits>(b & static_cast<Bits>(Bits(0) - static_cast<Bits>(keep)));
  }
};

using Float32Bits = FloatBits<uint32_t, 0x80000000u, 0x7f800000u>;
using Float64Bits = FloatBits<uint64_t, 0x8000000000000000ull, 0x7ff0000000000000ull>;
using Float16Bits = FloatBits<uint16_t, 0x8000u, 0x7c00u>;
using BFloat16Bits = FloatBits<uint16_t, 0x8000u, 0x7f80u>;

// ---- Per-word logic (used by the CPU kernels; the CUDA kernels build words with __ballot_sync
// from the per-element functions above instead). Full words go through 32 one-byte flags: a
// flag loop has no variable shifts, so the compiler vectorises it with baseline SSE2 / NEON,
// and 8 flags fold into 8 bits with one multiplication (about 4x faster than a bit loop). ----

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "bitmap_logic.h: the flag <-> bit folding assumes a little-endian host"
#endif

/// Bit i of the result = flags[i] (each 0 or 1), for 32 flags.
NEUROFLUX_HOST_DEVICE NEUROFLUX_FORCE_INLINE uint32_t word_from_flags(const uint8_t* flags) {
  uint32_t word = 0;
  for (int q = 0; q < 4; ++q) {
    uint64_t eight = 0;  // flags 8q..8q+7 as the bytes of one integer (little-endian)
    for (int b = 0; b < 8; ++b) eight |= static_cast<uint64_t>(flags[8 * q + b]) << (8 * b);
    // The multiplication gathers byte b's low bit into bit 56 + b; no two terms collide.
    word |= static_cast<uint32_t>((eight * 0x0102040810204080ull) >> 56) << (8 * q);
  }
  return word;
}

/// flags[i] = bit i of `word` (0 or 1), for 32 flags.
NEUROFLUX_HOST_DEVICE NEUROFLUX_FORCE_INLINE void flags_from_word(uint32_t word, uint8_t* flags) {
  for (int q = 0; q < 4; ++q) {
    // Byte b of x keeps bit b of the replicated byte; adding 0x7f carries into its top bit iff
    // that bit was set.
    uint64_t x = ((word >> (8 * q)) & 0xffu) * 0x0101010101010101ull;
    x = (((x & 0x8040201008040201ull) + 0x7f7f7f7f7f7f7f7full) & 0x8080808080808080ull) >> 7;
    for (int b = 0; b < 8; ++b) flags[8 * q + b] = static_cast<uint8_t>(x >> (8 * b));
  }
}

/// The mask word of `count` (<= 32) consecutive elements.
template <typename Fmt>
NEUROFLUX_HOST_DEVICE NEUROFLUX_FORCE_INLINE uint32_t nonzero_word(const typename Fmt::Bits* x,
                                                                   int count) {
  if (count == kWordBits) {
    uint8_t flags[kWordBits];
    for (int i = 0; i < kWordBits; ++i) flags[i] = Fmt::is_nonzero(x[i]);
    return word_from_flags(flags);
  }
  uint32_t word = 0;
  for (int i = 0; i < count; ++i) word |= static_cast<uint32_t>(Fmt::is_nonzero(x[i])) << i;
  return word;
}

/// relu of `count` (<= 32) elements into `y`; returns the word of the elements relu kept.
template <typename Fmt>
NEUROFLUX_HOST_DEVICE NEUROFLUX_FORCE_INLINE uint32_t relu_word(const typename Fmt::Bits* x,
                                                                typename Fmt::Bits* y, int count) {
  if (count == kWordBits) {
    uint8_t flags[kWordBits];
    for (int i = 0; i < kWordBits; ++i) {
      const bool keep = Fmt::relu_keeps(x[i]);
      flags[i] = keep;
      y[i] = Fmt::select(keep, x[i]);
    }
    return word_from_flags(flags);
  }
  uint32_t word = 0;
  for (int i = 0; i < count; ++i) {
    const bool keep = Fmt::relu_keeps(x[i]);
    y[i] = Fmt::select(keep, x[i]);
    word |= static_cast<uint32_t>(keep) << i;
  }
  return word;
}

/// out[i] = grad[i] where bit i of `word` is set, +0 elsewhere, for `count` (<= 32) elements.
template <typename Fmt>
NEUROFLUX_HOST_DEVICE NEUROFLUX_FORCE_INLINE void mask_word(uint32_t word,
                                                            const typename Fmt::Bits* grad,
                                                            typename Fmt::Bits* out, int count) {
  uint8_t flags[kWordBits];
  flags_from_word(word, flags);
  for (int i = 0; i < count; ++i) out[i] = Fmt::select(flags[i] != 0, grad[i]);
}

/// flags[i] = bit i of `word`, ranks[i] = the set bits below i (where element i's value goes
/// among the word's values); returns popcount(word). Byte-wise prefix sums: multiplying 8 flag
/// bytes by 0x0101..01 leaves in byte b the sum of bytes 0..b (at most 8: no carries).
NEUROFLUX_HOST_DEVICE NEUROFLUX_FORCE_INLINE int word_ranks(uint32_t word, uint8_t* flags,
                                                            uint8_t* ranks) {
  flags_from_word(word, flags);
  int base = 0;
  for (int q = 0; q < 4; ++q) {
    uint64_t eight = 0;
    for (int b = 0; b < 8; ++b) eight |= static_cast<uint64_t>(flags[8 * q + b]) << (8 * b);
    const uint64_t inclusive = eight * 0x0101010101010101ull;
    const uint64_t exclusive =
        inclusive - eight + 0x0101010101010101ull * static_cast<uint64_t>(base);
    for (int b = 0; b < 8; ++b) ranks[8 * q + b] = static_cast<uint8_t>(exclusive >> (8 * b));
    base += static_cast<int>(inclusive >> 56);
  }
  return base;
}

/// Appends the elements of x selected by `word` to `out`, in order; returns how many. Reads only
/// selected elements and writes only `out[0, popcount)`, so it is safe anywhere (the last,
/// partial word included); one step per set bit, the fastest way for sparse words.
template <typename Bits>
NEUROFLUX_HOST_DEVICE NEUROFLUX_FORCE_INLINE int compact_word(uint32_t word, const Bits* x,
                                                              Bits* out) {
  int k = 0;
  while (word != 0) {
    out[k++] = x[count_trailing_zeros(word)];
    word &= word - 1u;  // clear the lowest set bit
  }
  return k;
}

/// compact_word for a full word without branches: every element is stored at its rank, so an
/// unselected element lands on the slot the next selected one overwrites, and the trailing ones
/// on out[popcount(word)]. That slot must belong to a later value written afterwards by the same
/// thread (the caller checks); out[0, popcount] must be writable.
template <typename Bits>
NEUROFLUX_HOST_DEVICE NEUROFLUX_FORCE_INLINE int compact_word_unguarded(uint32_t word,
                                                                        const Bits* x, Bits* out) {
  uint8_t flags[kWordBits], ranks[kWordBits];
  const int count = word_ranks(word, flags, ranks);
  for (int i = 0; i < kWordBits; ++i) out[ranks[i]] = x[i];
  return count;
}

/// Expands one word: out[i] = next value where bit i is set, +0 elsewhere, for `count` (<= 32)
/// elements; returns the number of values consumed. Reads only the values it places, so it is
/// safe at the end of the buffer.
template <typename Bits>
NEUROFLUX_HOST_DEVICE NEUROFLUX_FORCE_INLINE int expand_word(uint32_t word, const Bits* values,
                                                             Bits* out, int count) {
  for (int i = 0; i < count; ++i) out[i] = 0;
  int k = 0;
  while (word != 0) {
    out[count_trailing_zeros(word)] = values[k++];
    word &= word - 1u;
  }
  return k;
}

/// expand_word for a full word without branches: element i reads values[ranks[i]] and keeps it
/// only where its bit is set, so it may read values[popcount(word)]: the caller guarantees that
/// element exists.
template <typename Bits>
NEUROFLUX_HOST_DEVICE NEUROFLUX_FORCE_INLINE int expand_word_unguarded(uint32_t word,
                                                                       const Bits* values,
                                                                       Bits* out) {
  uint8_t flags[kWordBits], ranks[kWordBits];
  const int count = word_ranks(word, flags, ranks);
  for (int i = 0; i < kWordBits; ++i) {
    out[i] = static_cast<Bits>(values[ranks[i]] & static_cast<Bits>(Bits(0) - Bits(flags[i])));
  }
  return count;
}

}  // namespace neuroflux::ops::bitmap
