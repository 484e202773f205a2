#include "neuroflux/memory/memory_meter.h"

#include <c10/util/Exception.h>

#include <cstring>

#include "memory/cpu_tracking_allocator.h"
#include "neuroflux/memory/measured_phase.h"
#include "memory/cuda_memory_meter.h"

namespace neuroflux {
namespace {

class CpuMemoryMeter final : public MemoryMeter {
 public:
  CpuMemoryMeter() : allocator_(detail::CpuTrackingAllocator::install()) {}
  int64_t current() const override { return allocator_.current(); }
  int64_t peak() const override { return allocator_.peak(); }
  void set_limit(std::optional<int64_t> bytes) override { allocator_.set_limit(bytes); }
  std::optional<int64_t> limit() const override { return allocator_.limit(); }
  int64_t reserved() const override {
    return allocator_.current() + allocator_.cache().stats().cached_bytes;
  }
  void release_cached() override { allocator_.cache().release_all(); }
  std::string device_name() const override { return "cpu"; }

 protected:
  void reset_peak_to_current() override { allocator_.reset_peak(); }

 private:
  detail::CpuTrackingAllocator& allocator_;
};

}  // namespace

void MemoryMeter::reset_peak() {
  MeasuredPhase::carry_peak_before_reset(*this);
  reset_peak_to_current();
}

MemoryMeter& MemoryMeter::cpu() {
  static CpuMemoryMeter meter;
  return meter;
}

MemoryMeter& MemoryMeter::of(const c10::Device& device) {
  if (device.is_cpu()) return cpu();
  if (device.is_cuda()) return detail::cuda_memory_meter(device.has_index() ? device.index() : 0);
  TORCH_CHECK(false, "neuroflux: no MemoryMeter for device ", device.str());
}

UntrackedScope::UntrackedScope() : previous_(detail::CpuTrackingAllocator::untracked_) {
  detail::CpuTrackingAllocator::untracked_ = true;
}
UntrackedScope::~UntrackedScope() { detail::CpuTrackingAllocator::untracked_ = previous_; }

MemoryLimitGuard::MemoryLimitGuard(MemoryMeter& meter, std::optional<int64_t> bytes)
    : meter_(meter), previous_(meter.limit()) {
  meter_.set_limit(bytes);
  meter_.reset_peak();
}
MemoryLimitGuard::~MemoryLimitGuard() { meter_.set_limit(previous_); }

bool is_out_of_memory(const std::exception& e) {
  if (dynamic_cast<const c10::OutOfMemoryError*>(&e) != nullptr) return true;
  // CUDA's caching allocator in some builds throws a plain c10::Error.
  return std::strstr(e.what(), "out of memory") != nullptr;
}

}  // namespace neuroflux
