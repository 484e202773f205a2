// The CPU half of MemoryMeter: an at::Allocator that counts what ATen allocates on the CPU, and
// keeps freed blocks for reuse so that a training step does not hand its activations back to the
// operating system only to fault them in again in the next step.
#pragma once

#include <c10/core/Allocator.h>

#include <atomic>
#include <cstdint>
#include <optional>

#include "memory/block_cache.h"

namespace neuroflux::detail {

/// Told of every tracked allocation and release while it is set (AllocationTrace).
class AllocationObserver {
 public:
  virtual ~AllocationObserver() = default;
  virtual void allocated(const void* data, int64_t bytes) = 0;
  virtual void released(const void* data, int64_t bytes) = 0;
};

class CpuTrackingAllocator final : public c10::Allocator {
 public:
  /// Installs the allocator as ATen's CPU allocator (once) and returns it.
  static CpuTrackingAllocator& install();

  c10::DataPtr allocate(size_t nbytes) const override;
  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  // The budget counts the bytes ATen asked for while they are handed out; a block waiting in the
  // cache counts for nothing, so caching never changes live, peak or what the limit refuses.
  int64_t current() const { return current_.load(std::memory_order_relaxed); }
  int64_t peak() const { return peak_.load(std::memory_order_relaxed); }
  void reset_peak() { peak_.store(current(), std::memory_order_relaxed); }
  void set_limit(std::optional<int64_t> bytes) { limit_.store(bytes ? *bytes : -1); }
  std::optional<int64_t> limit() const {
    const int64_t l = limit_.load();
    return l < 0 ? std::nullopt : std::optional<int64_t>(l);
  }

  BlockCache& cache() { return cache_; }

  static thread_local bool untracked_;

  /// Sets (or with null, clears) the one observer; clear it only while no other thread allocates.
  static void set_observer(AllocationObserver* observer) {
    observer_.store(observer, std::memory_order_release);
  }

 private:
  CpuTrackingAllocator();
  static void release(void* data);

  mutable std::atomic<int64_t> current_{0};
  mutable std::atomic<int64_t> peak_{0};
  std::atomic<int64_t> limit_{-1};
  mutable BlockCache cache_;
  static std::atomic<AllocationObserver*> observer_;
};

}  // namespace neuroflux::detail
