#include "memory/cuda_memory_meter.h"

#include <c10/util/Exception.h>

#ifdef NEUROFLUX_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>

#include <map>
#include <memory>
#include <mutex>
#endif

namespace neuroflux::detail {

#ifdef NEUROFLUX_WITH_CUDA
namespace {

namespace alloc = c10::cuda::CUDACachingAllocator;

// Counts what the caching allocator has handed out (allocated_bytes), not what it reserved from
// the driver: cached-but-free blocks are reusable and are not part of the working set. The limit
// is the allocator's per-process memory fraction, which makes it raise a real CUDA OOM.
class CudaMemoryMeter final : public MemoryMeter {
 public:
  explicit CudaMemoryMeter(c10::DeviceIndex index) : index_(index) {}
  int64_t current() const override {
    return alloc::getDeviceStats(index_).allocated_bytes[kAggregate].current;
  }
  int64_t peak() const override {
    return alloc::getDeviceStats(index_).allocated_bytes[kAggregate].peak;
  }
  void set_limit(std::optional<int64_t> bytes) override {
    size_t free_bytes = 0, total_bytes = 0;
    C10_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    const double fraction = bytes ? static_cast<double>(*bytes) / static_cast<double>(total_bytes)
                                  : 1.0;
    alloc::setMemoryFraction(std::min(1.0, fraction), index_);
    limit_ = bytes;
  }
  std::optional<int64_t> limit() const override { return limit_; }
  int64_t reserved() const override {
    return alloc::getDeviceStats(index_).reserved_bytes[kAggregate].current;
  }
  void release_cached() override { alloc::emptyCache(); }
  std::string device_name() const override { return "cuda:" + std::to_string(index_); }

 protected:
  void reset_peak_to_current() override { alloc::resetPeakStats(index_); }

 private:
  static constexpr size_t kAggregate = static_cast<size_t>(alloc::StatType::AGGREGATE);
  c10::DeviceIndex index_;
  std::optional<int64_t> limit_;
};

}  // namespace

MemoryMeter& cuda_memory_meter(c10::DeviceIndex index) {
  static std::mutex mutex;
  static std::map<c10::DeviceIndex, std::unique_ptr<CudaMemoryMeter>> meters;
  std::lock_guard<std::mutex> lock(mutex);
  auto& meter = meters[index];
  if (!meter) meter = std::make_unique<CudaMemoryMeter>(index);
  return *meter;
}
#else
MemoryMeter& cuda_memory_meter(c10::DeviceIndex) {
  TORCH_CHECK(false, "neuroflux: this build has no CUDA support (configure with NEUROFLUX_CUDA=ON "
                     "against a CUDA-enabled LibTorch)");
}
#endif

}  // namespace neuroflux::detail
