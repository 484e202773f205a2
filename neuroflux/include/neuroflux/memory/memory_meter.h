// MemoryMeter: the one interface for device memory (docs/architecture.md, "How memory is measured").
//
// CPU: a tracking allocator installed with c10::SetCPUAllocator counts live bytes and the peak of
// every ATen CPU allocation, and with a limit set refuses an allocation past it with
// c10::OutOfMemoryError, so a CPU run emulates a device of exactly B bytes. Like the CUDA caching
// allocator it keeps freed blocks for reuse (reserved(), not current()): a training step then
// reuses last step's memory instead of returning it to the kernel and faulting it in again.
// CUDA: the caching allocator's statistics and its per-process memory fraction.
//
// What it cannot see: memory a library allocates behind ATen's back (OpenBLAS / oneDNN scratch
// buffers, std::vector in our own code). Host-side storage that is outside the budget by design
// (the data set, the activation cache) is allocated inside an UntrackedScope.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <optional>
#include <string>

namespace neuroflux {

class MemoryMeter {
 public:
  /// The meter of `device`; for CPU this installs the tracking allocator on first use.
  static MemoryMeter& of(const c10::Device& device);
  static MemoryMeter& cpu();

  virtual ~MemoryMeter() = default;
  virtual int64_t current() const = 0;     ///< live tracked bytes now
  virtual int64_t peak() const = 0;        ///< highest live bytes since the last reset_peak()
  /// peak := current. Inside a MeasuredPhase the peak so far is first carried into the phase,
  /// so a reset (a batch trial's, a profiled step's) never loses a phase's peak.
  void reset_peak();
  /// Refuse allocations that would take live bytes past `bytes`; nullopt removes the limit.
  virtual void set_limit(std::optional<int64_t> bytes) = 0;
  virtual std::optional<int64_t> limit() const = 0;
  /// Bytes held by the allocator: live bytes plus freed blocks kept for reuse. Cached blocks count
  /// against no limit until they are handed out again.
  virtual int64_t reserved() const = 0;
  /// Gives the cached free blocks back to the system; live bytes are untouched.
  virtual void release_cached() = 0;
  virtual std::string device_name() const = 0;

 protected:
  virtual void reset_peak_to_current() = 0;
};

/// While alive on this thread, CPU allocations are neither counted nor limited (nor is their
/// release). For host data that lives outside the device budget: data sets, the activation cache.
class UntrackedScope {
 public:
  UntrackedScope();
  ~UntrackedScope();
  UntrackedScope(const UntrackedScope&) = delete;
  UntrackedScope& operator=(const UntrackedScope&) = delete;

 private:
  bool previous_;
};

/// Sets a limit for the lifetime of the guard and restores the previous one after; the peak is
/// reset on entry so peak() afterwards is the peak inside the guard.
class MemoryLimitGuard {
 public:
  MemoryLimitGuard(MemoryMeter& meter, std::optional<int64_t> bytes);
  ~MemoryLimitGuard();
  MemoryLimitGuard(const MemoryLimitGuard&) = delete;
  MemoryLimitGuard& operator=(const MemoryLimitGuard&) = delete;

 private:
  MemoryMeter& meter_;
  std::optional<int64_t> previous_;
};

/// True when `e` (any exception) is an out-of-memory refusal from a MemoryMeter or the device.
bool is_out_of_memory(const std::exception& e);

}  // namespace neuroflux
