// Host storage for offloaded activations (memory.strategy = offload), with the copies done on a
// background thread so they overlap the training's compute.
//
// CPU run: the tensors go to memory-mapped temporary files, outside the tracked budget (the
// "device" here is the budget-limited tracked memory; the mapping is what host RAM would be).
// CUDA run: pinned host tensors, copied on a side stream from the device's stream pool.
// Only the CPU path has run; the CUDA path compiles but has not been exercised (no GPU here).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <string>

namespace neuroflux {

struct OffloadStats {
  int64_t offloaded_bytes = 0;     ///< total bytes sent to the host
  int64_t transfers = 0;           ///< tensors sent (each comes back once)
  double wait_seconds = 0;         ///< time the training thread waited for a transfer
};

class OffloadStore {
 public:
  /// `dir`: where the CPU path's temporary files go ("" = $TMPDIR or /tmp); they are unlinked
  /// at once, so nothing is left behind after a crash. A file that cannot be made there (a full
  /// disk) is a DataError naming `dir`.
  OffloadStore(c10::Device device, std::string dir = "");
  ~OffloadStore();
  OffloadStore(const OffloadStore&) = delete;
  OffloadStore& operator=(const OffloadStore&) = delete;

  /// Starts copying `x` out; `x`'s device memory is released when the copy is done. Returns the
  /// slot to prefetch / fetch it back by. Slots are reused from one step to the next.
  int64_t offload(const at::Tensor& x);
  /// Waits until slot's copy out is done and the store holds no reference to its device tensor.
  void wait_offloaded(int64_t slot);
  /// Starts copying slot's tensor back into (tracked) device memory; fetch() then waits less.
  void prefetch(int64_t slot);
  /// The tensor back on the device, waiting for its copy if needed. Each slot is fetched once
  /// per step.
  at::Tensor fetch(int64_t slot);
  /// Begins a new step: every slot is free again. Waits for copies still in flight.
  void new_step();

  const OffloadStats& stats() const;
  void reset_stats();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace neuroflux
