// CUDA kernels of the bitmap operators; see bitmap_kernels.cuh for the scheme. The per-element
// decisions (what is non-zero, what relu keeps, where a value goes inside its word) come from
// bitmap_logic.h, the same code the CPU kernels run.
#include <climits>

#include "csrc/bitmap/bitmap_logic.h"
#include "csrc/bitmap/cuda/bitmap_kernels.cuh"

namespace neuroflux::ops::cuda {
namespace {

using namespace neuroflux::ops::bitmap;

constexpr unsigned kFullWarp = 0xffffffffu;
constexpr int kScanThreads = 1024;  // the single block of the global scan
static_assert(kWordsPerWarp <= 32 && (kWordsPerWarp & (kWordsPerWarp - 1)) == 0,
              "a warp's words are held one per lane and scanned with power-of-two shuffles");

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
struct FormatOf<__half> {
  using type = Float16Bits;
};
template <>
struct FormatOf<__nv_bfloat16> {
  using type = BFloat16Bits;
};

// Warp w of block b owns the mask words [b * kTileWords + w * kWordsPerWarp, + kWordsPerWarp);
// in every pass, lane j of the warp holds word j.
__device__ __forceinline__ int lane_id() { return static_cast<int>(threadIdx.x & 31u); }
__device__ __forceinline__ int64_t warp_first_word() {
  return static_cast<int64_t>(blockIdx.x) * kTileWords +
         static_cast<int64_t>(threadIdx.x / 32) * kWordsPerWarp;
}

// ---- pass 1 of pack: mask words by warp ballot, non-zeros per tile ----

template <typename Fmt>
__global__ void __launch_bounds__(kThreadsPerBlock)
    pack_count_kernel(const typename Fmt::Bits* __restrict__ x, int64_t n,
                      uint32_t* __restrict__ mask, int64_t* __restrict__ tile_counts) {
  using Bits = typename Fmt::Bits;
  const int lane = lane_id();
  const int64_t w0 = warp_first_word();
  const int64_t words = mask_words(n);
  Bits v[kWordsPerWarp];
#pragma unroll
  for (int j = 0; j < kWordsPerWarp; ++j) {  // all loads first: kWordsPerWarp in flight per lane
    const int64_t i = (w0 + j) * kWordBits + lane;
    v[j] = i < n ? x[i] : Bits(0);  // past the end reads as zero: the word's tail bits stay clear
  }
  uint32_t my_word = 0;
  int count = 0;
#pragma unroll
  for (int j = 0; j < kWordsPerWarp; ++j) {
    const uint32_t word = __ballot_sync(kFullWarp, Fmt::is_nonzero(v[j]));
    if (lane == j) my_word = word;
    count += popcount(word);
  }
  if (lane < kWordsPerWarp && w0 + lane < words) mask[w0 + lane] = my_word;  // one coalesced store

  __shared__ int warp_counts[kWarpsPerBlock];
  if (lane == 0) warp_counts[threadIdx.x / 32] = count;
  __syncthreads();
  if (threadIdx.x == 0) {
    int64_t total = 0;
    for (int k = 0; k < kWarpsPerBlock; ++k) total += warp_counts[k];
    tile_counts[blockIdx.x] = total;
  }
}

// ---- pass 1 of unpack: set bits per tile, from the mask alone ----

__global__ void __launch_bounds__(kTileWords)
    unpack_count_kernel(const uint32_t* __restrict__ mask, int64_t n,
                        int64_t* __restrict__ tile_counts, int64_t* __restrict__ tail_flag) {
  const int lane = lane_id();
  const int64_t words = mask_words(n);
  const int64_t w = static_cast<int64_t>(blockIdx.x) * kTileWords + threadIdx.x;
  int count = 0;
  if (w < words) {
    const uint32_t word = mask[w];
    count = popcount(word);
    if (w == words - 1) *tail_flag = (word & tail_bits(n)) != 0 ? 1 : 0;
  }
#pragma unroll
  for (int d = 16; d > 0; d >>= 1) count += __shfl_down_sync(kFullWarp, count, d);
  __shared__ int warp_counts[kTileWords / 32];
  if (lane == 0) warp_counts[threadIdx.x / 32] = count;
  __syncthreads();
  if (threadIdx.x == 0) {
    int64_t total = 0;
    for (int k = 0; k < kTileWords / 32; ++k) total += warp_counts[k];
    tile_counts[blockIdx.x] = total;
  }
}

// ---- pass 2: exclusive scan of the tile counts, in place; data[count] := total ----
// One block walks the array in rounds of kScanThreads, each round a warp-shuffle scan, a scan of
// the 32 warp totals, and a running carry that every thread keeps in a register.

__global__ void __launch_bounds__(kScanThreads)
    exclusive_scan_kernel(int64_t* __restrict__ data, int64_t count) {
  constexpr int kWarps = kScanThreads / 32;
  static_assert(kWarps == 32, "the warp totals are scanned by one warp");
  __shared__ int64_t warp_sums[kWarps];
  const int lane = lane_id();
  const int warp = static_cast<int>(threadIdx.x / 32);
  int64_t carry = 0;
  for (int64_t base = 0; base < count; base += kScanThreads) {
    const int64_t i = base + threadIdx.x;
    const int64_t v = i < count ? data[i] : 0;
    int64_t s = v;  // inclusive scan within the warp
#pragma unroll
    for (int d = 1; d < 32; d <<= 1) {
      const int64_t t = __shfl_up_sync(kFullWarp, s, d);
      if (lane >= d) s += t;
    }
    if (lane == 31) warp_sums[warp] = s;
    __syncthreads();
    if (warp == 0) {  // inclusive scan of the warp totals
      int64_t w = warp_sums[lane];
#pragma unroll
      for (int d = 1; d < 32; d <<= 1) {
        const int64_t t = __shfl_up_sync(kFullWarp, w, d);
        if (lane >= d) w += t;
      }
      warp_sums[lane] = w;
    }
    __syncthreads();
    const int64_t before = carry + (warp == 0 ? 0 : warp_sums[warp - 1]);
    if (i < count) data[i] = before + s - v;
    carry += warp_sums[kWarps - 1];
    __syncthreads();  // warp_sums is overwritten in the next round
  }
  if (threadIdx.x == 0) data[count] = carry;
}

// ---- pass 3 helpers: where each word's values start ----

struct WarpWords {
  uint32_t word;      // word `lane` of this warp (0 for lanes >= kWordsPerWarp)
  int word_offset;    // its first value, counted from the warp's first value
  int64_t warp_base;  // the warp's first value in `values`
};

// Loads the warp's words, scans their popcounts across lanes, then scans the per-warp totals
// across the block (kWarpsPerBlock entries in shared memory) and adds the tile's offset from
// pass 2. Every thread of the block must call it (it synchronises).
__device__ __forceinline__ WarpWords warp_words(const uint32_t* __restrict__ mask, int64_t words,
                                                const int64_t* __restrict__ tile_offsets) {
  __shared__ int warp_totals[kWarpsPerBlock];
  const int lane = lane_id();
  const int warp = static_cast<int>(threadIdx.x / 32);
  const int64_t w0 = warp_first_word();
  const uint32_t word = (lane < kWordsPerWarp && w0 + lane < words) ? mask[w0 + lane] : 0u;
  const int c = popcount(word);
  int s = c;
#pragma unroll
  for (int d = 1; d < kWordsPerWarp; d <<= 1) {
    const int t = __shfl_up_sync(kFullWarp, s, d);
    if (lane >= d) s += t;
  }
  const int warp_total = __shfl_sync(kFullWarp, s, kWordsPerWarp - 1);
  if (lane == 0) warp_totals[warp] = warp_total;
  __syncthreads();
  int64_t warp_base = tile_offsets[blockIdx.x];
  for (int k = 0; k < warp; ++k) warp_base += warp_totals[k];
  return {word, s - c, warp_base};
}

template <typename Fmt>
__global__ void __launch_bounds__(kThreadsPerBlock)
    pack_scatter_kernel(const typename Fmt::Bits* __restrict__ x, int64_t n,
                        const uint32_t* __restrict__ mask, const int64_t* __restrict__ tile_offsets,
                        typename Fmt::Bits* __restrict__ values) {
  const WarpWords ww = warp_words(mask, mask_words(n), tile_offsets);
  const int lane = lane_id();
  const int64_t w0 = warp_first_word();
#pragma unroll
  for (int j = 0; j < kWordsPerWarp; ++j) {
    const uint32_t word = __shfl_sync(kFullWarp, ww.word, j);
    const int offset = __shfl_sync(kFullWarp, ww.word_offset, j);
    if (bit_set(word, lane)) {  // never set past n: pass 1 left the tail bits clear
      values[ww.warp_base + offset + rank_in_word(word, lane)] = x[(w0 + j) * kWordBits + lane];
    }
  }
}

template <typename Fmt>
__global__ void __launch_bounds__(kThreadsPerBlock)
    unpack_scatter_kernel(const uint32_t* __restrict__ mask,
                          const typename Fmt::Bits* __restrict__ values, int64_t n,
                          const int64_t* __restrict__ tile_offsets,
                          typename Fmt::Bits* __restrict__ out) {
  using Bits = typename Fmt::Bits;
  const WarpWords ww = warp_words(mask, mask_words(n), tile_offsets);
  const int lane = lane_id();
  const int64_t w0 = warp_first_word();
#pragma unroll
  for (int j = 0; j < kWordsPerWarp; ++j) {
    const uint32_t word = __shfl_sync(kFullWarp, ww.word, j);
    const int offset = __shfl_sync(kFullWarp, ww.word_offset, j);
    const int64_t i = (w0 + j) * kWordBits + lane;
    if (i < n) {
      out[i] =
          bit_set(word, lane) ? values[ww.warp_base + offset + rank_in_word(word, lane)] : Bits(0);
    }
  }
}

// ---- relu: forward with its mask in one pass, backward from the mask ----

template <typename Fmt>
__global__ void __launch_bounds__(kThreadsPerBlock)
    relu_forward_kernel(const typename Fmt::Bits* __restrict__ x, int64_t n,
                        typename Fmt::Bits* __restrict__ y, uint32_t* __restrict__ mask) {
  using Bits = typename Fmt::Bits;
  const int lane = lane_id();
  const int64_t w0 = warp_first_word();
  Bits v[kWordsPerWarp];
#pragma unroll
  for (int j = 0; j < kWordsPerWarp; ++j) {
    const int64_t i = (w0 + j) * kWordBits + lane;
    v[j] = i < n ? x[i] : Bits(0);
  }
  uint32_t my_word = 0;
#pragma unroll
  for (int j = 0; j < kWordsPerWarp; ++j) {
    const int64_t i = (w0 + j) * kWordBits + lane;
    const bool keep = Fmt::relu_keeps(v[j]);  // false for the +0 padding past n
    if (i < n) y[i] = Fmt::select(keep, v[j]);
    const uint32_t word = __ballot_sync(kFullWarp, keep);
    if (lane == j) my_word = word;
  }
  if (lane < kWordsPerWarp && w0 + lane < mask_words(n)) mask[w0 + lane] = my_word;
}

template <typename Fmt>
__global__ void __launch_bounds__(kThreadsPerBlock)
    relu_backward_kernel(const typename Fmt::Bits* __restrict__ grad,
                         const uint32_t* __restrict__ mask, int64_t n,
                         typename Fmt::Bits* __restrict__ out) {
  const int lane = lane_id();
  const int64_t w0 = warp_first_word();
  const uint32_t mine = (lane < kWordsPerWarp && w0 + lane < mask_words(n)) ? mask[w0 + lane] : 0u;
#pragma unroll
  for (int j = 0; j < kWordsPerWarp; ++j) {
    const uint32_t word = __shfl_sync(kFullWarp, mine, j);
    const int64_t i = (w0 + j) * kWordBits + lane;
    if (i < n) out[i] = Fmt::select(bit_set(word, lane), grad[i]);
  }
}

bool grid_fits(int64_t tiles) { return tiles > 0 && tiles <= INT_MAX; }

template <typename T>
using BitsOf = typename FormatOf<T>::type::Bits;

template <typename T>
const BitsOf<T>* bits(const T* p) {
  return reinterpret_cast<const BitsOf<T>*>(p);
}
template <typename T>
BitsOf<T>* bits(T* p) {
  return reinterpret_cast<BitsOf<T>*>(p);
}

cudaError_t launched() { return cudaGetLastError(); }

}  // namespace

template <typename T>
cudaError_t launch_bitmap_pack_count(const T* x, int64_t n, uint32_t* mask, int64_t* scratch,
                                     cudaStream_t stream) {
  const int64_t tiles = num_tiles(n);
  if (!grid_fits(tiles)) return cudaErrorInvalidValue;
  pack_count_kernel<typename FormatOf<T>::type>
      <<<static_cast<unsigned>(tiles), kThreadsPerBlock, 0, stream>>>(bits(x), n, mask, scratch);
  if (const cudaError_t e = launched(); e != cudaSuccess) return e;
  exclusive_scan_kernel<<<1, kScanThreads, 0, stream>>>(scratch, tiles);
  return launched();
}

template <typename T>
cudaError_t launch_bitmap_pack_scatter(const T* x, int64_t n, const uint32_t* mask,
                                       const int64_t* scratch, T* values, cudaStream_t stream) {
  const int64_t tiles = num_tiles(n);
  if (!grid_fits(tiles)) return cudaErrorInvalidValue;
  pack_scatter_kernel<typename FormatOf<T>::type>
      <<<static_cast<unsigned>(tiles), kThreadsPerBlock, 0, stream>>>(bits(x), n, mask, scratch,
                                                                      bits(values));
  return launched();
}

cudaError_t launch_bitmap_unpack_count(const uint32_t* mask, int64_t n, int64_t* scratch,
                                       cudaStream_t stream) {
  const int64_t tiles = num_tiles(n);
  if (!grid_fits(tiles)) return cudaErrorInvalidValue;
  unpack_count_kernel<<<static_cast<unsigned>(tiles), kTileWords, 0, stream>>>(mask, n, scratch,
                                                                               scratch + tiles + 1);
  if (const cudaError_t e = launched(); e != cudaSuccess) return e;
  exclusive_scan_kernel<<<1, kScanThreads, 0, stream>>>(scratch, tiles);
  return launched();
}

template <typename T>
cudaError_t launch_bitmap_unpack_scatter(const uint32_t* mask, const T* values, int64_t n,
                                         const int64_t* scratch, T* out, cudaStream_t stream) {
  const int64_t tiles = num_tiles(n);
  if (!grid_fits(tiles)) return cudaErrorInvalidValue;
  unpack_scatter_kernel<typename FormatOf<T>::type>
      <<<static_cast<unsigned>(tiles), kThreadsPerBlock, 0, stream>>>(mask, bits(values), n,
                                                                      scratch, bits(out));
  return launched();
}

template <typename T>
cudaError_t launch_bitmap_relu_forward(const T* x, int64_t n, T* y, uint32_t* mask,
                                       cudaStream_t stream) {
  const int64_t tiles = num_tiles(n);
  if (!grid_fits(tiles)) return cudaErrorInvalidValue;
  relu_forward_kernel<typename FormatOf<T>::type>
      <<<static_cast<unsigned>(tiles), kThreadsPerBlock, 0, stream>>>(bits(x), n, bits(y), mask);
  return launched();
}

template <typename T>
cudaError_t launch_bitmap_relu_backward(const T* grad, const uint32_t* mask, int64_t n, T* out,
                                        cudaStream_t stream) {
  const int64_t tiles = num_tiles(n);
  if (!grid_fits(tiles)) return cudaErrorInvalidValue;
  relu_backward_kernel<typename FormatOf<T>::type>
      <<<static_cast<unsigned>(tiles), kThreadsPerBlock, 0, stream>>>(bits(grad), mask, n,
                                                                      bits(out));
  return launched();
}

#define NEUROFLUX_INSTANTIATE_BITMAP_LAUNCHERS(T)                                             \
  template cudaError_t launch_bitmap_pack_count<T>(const T*, int64_t, uint32_t*, int64_t*,    \
                                                   cudaStream_t);                             \
  template cudaError_t launch_bitmap_pack_scatter<T>(const T*, int64_t, const uint32_t*,      \
                                                     const int64_t*, T*, cudaStream_t);       \
  template cudaError_t launch_bitmap_unpack_scatter<T>(const uint32_t*, const T*, int64_t,    \
                                                       const int64_t*, T*, cudaStream_t);     \
  template cudaError_t launch_bitmap_relu_forward<T>(const T*, int64_t, T*, uint32_t*,        \
                                                     cudaStream_t);                           \
  template cudaError_t launch_bitmap_relu_backward<T>(const T*, const uint32_t*, int64_t, T*, \
                                                      cudaStream_t);

NEUROFLUX_INSTANTIATE_BITMAP_LAUNCHERS(float)
NEUROFLUX_INSTANTIATE_BITMAP_LAUNCHERS(double)
NEUROFLUX_INSTANTIATE_BITMAP_LAUNCHERS(__half)
NEUROFLUX_INSTANTIATE_BITMAP_LAUNCHERS(__nv_bfloat16)
#undef NEUROFLUX_INSTANTIATE_BITMAP_LAUNCHERS

}  // namespace neuroflux::ops::cuda
