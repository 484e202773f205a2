// A cache of freed CPU memory blocks in size classes, as LibTorch's CUDA caching allocator keeps
// freed device blocks: a training step allocates the same sizes every step, and without a cache
// glibc returns the large ones to the kernel at free() and the next step page-faults them in
// again (measured: up to 29% of a mobilenetv2 step in the kernel; results/throughput/).
//
// Blocks are grouped by size class (four classes per power of two, so at most 25% is wasted) and
// handed back most-recently-freed first within a class. When the cached bytes would pass the
// cache's limit, the least recently freed blocks of any class go back to the system first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>

namespace neuroflux::detail {

struct BlockCacheStats {
  int64_t cached_bytes = 0;  ///< free bytes held for reuse now
  int64_t hits = 0;          ///< requests served from the cache
  int64_t misses = 0;        ///< requests that went to the system allocator
  int64_t evictions = 0;     ///< cached blocks returned to the system to stay under the limit
};

class BlockCache {
 public:
  /// `limit_bytes`: the most free bytes held at once; 0 disables caching.
  explicit BlockCache(int64_t limit_bytes);
  BlockCache(const BlockCache&) = delete;
  BlockCache& operator=(const BlockCache&) = delete;

  /// The capacity a request of `nbytes` gets: the smallest size class that holds it.
  static size_t size_class(size_t nbytes);

  /// A block of exactly `capacity` bytes (a size_class() value), 64-byte aligned: a cached one of
  /// that class when there is one, otherwise fresh from the system allocator.
  void* allocate(size_t capacity);
  /// Takes back a block that allocate(capacity) returned: cached, or freed when it cannot stay.
  void deallocate(void* block, size_t capacity);

  /// Returns every cached block to the system.
  void release_all();
  void set_limit(int64_t limit_bytes);
  int64_t limit() const;
  BlockCacheStats stats() const;

 private:
  // Lives in the first bytes of a free block: the block's links in its class and in the global
  // freeing order. Every class is at least sizeof(FreeBlock) bytes.
  struct FreeBlock {
    size_t capacity;
    FreeBlock* class_next;
    FreeBlock* class_prev;
    FreeBlock* older;  // freed before this one
    FreeBlock* newer;
  };

  void link(FreeBlock* block, size_t capacity);  // newest of both lists; caller holds mutex_
  void unlink(FreeBlock* block);                 // from both lists; caller holds mutex_
  void evict_until_fits(int64_t incoming);       // caller holds mutex_

  mutable std::mutex mutex_;
  std::unordered_map<size_t, FreeBlock*> newest_of_class_;
  FreeBlock* oldest_ = nullptr;
  FreeBlock* newest_ = nullptr;
  int64_t limit_bytes_;
  BlockCacheStats stats_;
};

/// The limit a process's CPU cache starts with: NEUROFLUX_CPU_CACHE_BYTES when set, otherwise a
/// quarter of physical memory, at most 8 GiB.
int64_t default_cpu_cache_limit();

}  // namespace neuroflux::detail
