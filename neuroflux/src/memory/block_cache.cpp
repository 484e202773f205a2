#include "memory/block_cache.h"

#include <c10/core/impl/alloc_cpu.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace neuroflux::detail {
namespace {

constexpr size_t kSmallestClass = 64;

}  // namespace

BlockCache::BlockCache(int64_t limit_bytes) : limit_bytes_(std::max<int64_t>(0, limit_bytes)) {
  static_assert(sizeof(FreeBlock) <= kSmallestClass, "a free block must hold its links");
}

size_t BlockCache::size_class(size_t nbytes) {
  if (nbytes <= kSmallestClass) return kSmallestClass;
  // 2^msb < nbytes <= 2^(msb+1); four equal steps inside that octave.
  const int msb = 63 - __builtin_clzll(static_cast<unsigned long long>(nbytes - 1));
  const size_t step = size_t{1} << (msb - 2);
  return (nbytes + step - 1) / step * step;
}

void* BlockCache::allocate(size_t capacity) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = newest_of_class_.find(capacity);
    if (it != newest_of_class_.end()) {
      FreeBlock* block = it->second;
      unlink(block);
      ++stats_.hits;
      return block;
    }
    ++stats_.misses;
  }
  return c10::alloc_cpu(capacity);
}

void BlockCache::deallocate(void* memory, size_t capacity) {
  const auto bytes = static_cast<int64_t>(capacity);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (bytes <= limit_bytes_) {
      evict_until_fits(bytes);
      link(static_cast<FreeBlock*>(memory), capacity);
      return;
    }
  }
  c10::free_cpu(memory);
}

void BlockCache::link(FreeBlock* block, size_t capacity) {
  block->capacity = capacity;
  FreeBlock*& head = newest_of_class_[capacity];
  block->class_prev = nullptr;
  block->class_next = head;
  if (head != nullptr) head->class_prev = block;
  head = block;

  block->newer = nullptr;
  block->older = newest_;
  (newest_ != nullptr ? newest_->newer : oldest_) = block;
  newest_ = block;
  stats_.cached_bytes += static_cast<int64_t>(capacity);
}

void BlockCache::unlink(FreeBlock* block) {
  if (block->class_prev != nullptr) {
    block->class_prev->class_next = block->class_next;
  } else if (block->class_next != nullptr) {
    newest_of_class_[block->capacity] = block->class_next;
  } else {
    newest_of_class_.erase(block->capacity);
  }
  if (block->class_next != nullptr) block->class_next->class_prev = block->class_prev;

  (block->older != nullptr ? block->older->newer : oldest_) = block->newer;
  (block->newer != nullptr ? block->newer->older : newest_) = block->older;
  stats_.cached_bytes -= static_cast<int64_t>(block->capacity);
}

void BlockCache::evict_until_fits(int64_t incoming) {
  while (oldest_ != nullptr && stats_.cached_bytes + incoming > limit_bytes_) {
    FreeBlock* victim = oldest_;
    unlink(victim);
    ++stats_.evictions;
    c10::free_cpu(victim);
  }
}

void BlockCache::release_all() {
  std::lock_guard<std::mutex> lock(mutex_);
  while (oldest_ != nullptr) {
    FreeBlock* block = oldest_;
    unlink(block);
    c10::free_cpu(block);
  }
}

void BlockCache::set_limit(int64_t limit_bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  limit_bytes_ = std::max<int64_t>(0, limit_bytes);
  evict_until_fits(0);
}

int64_t BlockCache::limit() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return limit_bytes_;
}

BlockCacheStats BlockCache::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

int64_t default_cpu_cache_limit() {
  if (const char* text = std::getenv("NEUROFLUX_CPU_CACHE_BYTES")) {
    char* end = nullptr;
    const long long bytes = std::strtoll(text, &end, 10);
    if (end != text && *end == '\0' && bytes >= 0) return bytes;
    std::fprintf(stderr,
                 "neuroflux: ignoring NEUROFLUX_CPU_CACHE_BYTES=\"%s\": expected a byte count\n",
                 text);
  }
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGE_SIZE);
  const int64_t physical = pages > 0 && page_size > 0 ? int64_t{pages} * page_size : 0;
  constexpr int64_t kMost = int64_t{8} << 30;
  return physical > 0 ? std::min(physical / 4, kMost) : int64_t{1} << 30;
}

}  // namespace neuroflux::detail
