// CUDA kernels of the bitmap operators: raw pointers and a cudaStream_t, no LibTorch, so that
// bitmap_kernels.cu also compiles standalone with nvcc (the CI compile check on machines without
// a GPU or a CUDA LibTorch). The LibTorch side is cuda/bitmap_cuda.cpp.
//
// Element types: float, double, __half, __nv_bfloat16. All kernels move raw bits, so results
// are bit-identical to the CPU kernels (same per-element logic, bitmap_logic.h).
//
// Work is cut into tiles of kTileElements elements (one thread block each, 8 warps, 8 mask words
// per warp). Pack and unpack are a two-pass global scan:
//   1. count:   per tile, the number of non-zeros (pack also writes the mask words here, each
//               from one __ballot_sync of a warp);
//   2. scan:    an exclusive scan of the tile counts, in place, by a single block; it also writes
//               the total at counts[num_tiles] (the host reads it to size `values`);
//   3. scatter: per tile, a block-level scan of the per-warp counts plus the tile's offset gives
//               every non-zero its position; each lane writes its own element.
// No atomics decide where a value goes, so the output is deterministic and in element order.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace neuroflux::ops::cuda {

constexpr int kThreadsPerBlock = 256;
constexpr int kWarpsPerBlock = kThreadsPerBlock / 32;
constexpr int kWordsPerWarp = 8;
constexpr int kTileWords = kWarpsPerBlock * kWordsPerWarp;
constexpr int64_t kTileElements = int64_t{kTileWords} * 32;  // 2048

/// Tiles covering `n` elements; the scan scratch holds num_tiles(n) + 1 int64 counts.
inline int64_t num_tiles(int64_t n) { return (n + kTileElements - 1) / kTileElements; }

/// Pack, passes 1 and 2: writes the ceil(n / 32) mask words and, in `scratch` (num_tiles(n) + 1
/// int64), every tile's first value index followed by the total number of non-zeros. n > 0.
template <typename T>
cudaError_t launch_bitmap_pack_count(const T* x, int64_t n, uint32_t* mask, int64_t* scratch,
                                     cudaStream_t stream);

/// Pack, pass 3: values[k] = k-th non-zero of x. `values` has scratch[num_tiles(n)] elements.
template <typename T>
cudaError_t launch_bitmap_pack_scatter(const T* x, int64_t n, const uint32_t* mask,
                                       const int64_t* scratch, T* values, cudaStream_t stream);

/// Unpack, passes 1 and 2: from the mask alone, the tile offsets and total as for pack, and
/// scratch[num_tiles(n) + 1] = 1 if the last word has bits set past element n - 1, else 0
/// (so `scratch` holds num_tiles(n) + 2 int64 here). n > 0.
cudaError_t launch_bitmap_unpack_count(const uint32_t* mask, int64_t n, int64_t* scratch,
                                       cudaStream_t stream);

/// Unpack, pass 3: out[i] = next value where bit i is set, +0 elsewhere, for all n elements.
template <typename T>
cudaError_t launch_bitmap_unpack_scatter(const uint32_t* mask, const T* values, int64_t n,
                                         const int64_t* scratch, T* out, cudaStream_t stream);

/// y = relu(x) and the mask of the elements relu kept (not <= 0: positive or NaN), one pass.
template <typename T>
cudaError_t launch_bitmap_relu_forward(const T* x, int64_t n, T* y, uint32_t* mask,
                                       cudaStream_t stream);

/// out = grad where the mask bit is set, +0 elsewhere.
template <typename T>
cudaError_t launch_bitmap_relu_backward(const T* grad, const uint32_t* mask, int64_t n, T* out,
                                        cudaStream_t stream);

}  // namespace neuroflux::ops::cuda
