#include "memory/cpu_tracking_allocator.h"

#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>

#include "neuroflux/util/size_format.h"

namespace neuroflux::detail {
namespace {

// Every block carries a header in front of the data so release() knows how many bytes to give
// back, whether they were counted and which size class to cache the block under. 64 bytes keeps
// the data at alloc_cpu's 64-byte alignment.
constexpr size_t kHeaderBytes = 64;
struct Header {
  int64_t bytes;
  size_t capacity;
  bool tracked;
};
static_assert(sizeof(Header) <= kHeaderBytes, "header must fit its slot");

CpuTrackingAllocator* g_allocator = nullptr;

}  // namespace

thread_local bool CpuTrackingAllocator::untracked_ = false;
std::atomic<AllocationObserver*> CpuTrackingAllocator::observer_{nullptr};

CpuTrackingAllocator::CpuTrackingAllocator() : cache_(default_cpu_cache_limit()) {}

CpuTrackingAllocator& CpuTrackingAllocator::install() {
  // Function-local static: installed once, thread-safe, never destroyed before ATen's last free.
  static CpuTrackingAllocator* instance = [] {
    auto* allocator = new CpuTrackingAllocator();
    g_allocator = allocator;
    // Priority above the default CPU allocator's registration (0).
    c10::SetCPUAllocator(allocator, /*priority=*/100);
    return allocator;
  }();
  return *instance;
}

c10::DataPtr CpuTrackingAllocator::allocate(size_t nbytes) const {
  const bool tracked = !untracked_;
  const auto bytes = static_cast<int64_t>(nbytes);
  if (tracked) {
    const int64_t now = current_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    const int64_t cap = limit_.load(std::memory_order_relaxed);
    if (cap >= 0 && now > cap) {
      current_.fetch_sub(bytes, std::memory_order_relaxed);
      TORCH_CHECK_WITH(OutOfMemoryError, false, "neuroflux: CPU out of memory: allocating ",
                       format_size(bytes, true), " would take live memory to ",
                       format_size(now, true), ", past the limit of ", format_size(cap, true),
                       " (memory.budget)");
    }
    int64_t seen = peak_.load(std::memory_order_relaxed);
    while (now > seen && !peak_.compare_exchange_weak(seen, now, std::memory_order_relaxed)) {
    }
  }
  const size_t capacity = BlockCache::size_class(nbytes + kHeaderBytes);
  void* base = nullptr;
  try {
    base = cache_.allocate(capacity);
  } catch (...) {
    if (tracked) current_.fetch_sub(bytes, std::memory_order_relaxed);
    throw;
  }
  auto* header = static_cast<Header*>(base);
  header->bytes = bytes;
  header->capacity = capacity;
  header->tracked = tracked;
  void* data = static_cast<char*>(base) + kHeaderBytes;
  if (tracked)
    if (auto* observer = observer_.load(std::memory_order_acquire)) observer->allocated(data, bytes);
  return {data, data, &release, c10::Device(c10::DeviceType::CPU)};
}

void CpuTrackingAllocator::release(void* data) {
  if (data == nullptr) return;
  void* base = static_cast<char*>(data) - kHeaderBytes;
  const auto* header = static_cast<const Header*>(base);
  if (header->tracked) {
    g_allocator->current_.fetch_sub(header->bytes, std::memory_order_relaxed);
    if (auto* observer = observer_.load(std::memory_order_acquire))
      observer->released(data, header->bytes);
  }
  g_allocator->cache_.deallocate(base, header->capacity);
}

}  // namespace neuroflux::detail
