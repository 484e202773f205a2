// What the profiler measured of each unit with its head: the Plan is computed from this alone,
// so `neuroflux plan` and tests can also build a Profile by hand.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "neuroflux/local/aux_head.h"
#include "neuroflux/memory/allocation_trace.h"

namespace neuroflux {

/// Seconds per sample at `batch` from measurements (batch, seconds per sample): interpolated in
/// log2(batch) between measured sizes, the nearest measurement beyond them.
double interpolated_seconds(const std::vector<std::pair<int64_t, double>>& measured, int64_t batch);

/// A step's fitted transient at `batch` (static + per_sample * batch), raised to what was
/// measured at the largest measured batch not above `batch`: a step's peak does not shrink as its
/// batch grows, and a line fitted over batches 2 to 128 undershoots the small ones wherever a
/// batch-independent buffer dominates them (a weight-sized gradient on a map of a few pixels).
double bounded_transient(double transient_static, double transient_per_sample,
                         const std::vector<std::pair<int64_t, int64_t>>& measured, int64_t batch);

/// A unit's training step run in another mode (local/unit_step.h: recompute, row_centric):
/// its own fitted transient and measured step time. The plain step's are UnitProfile's own.
struct UnitModeProfile {
  std::string mode;
  double transient_static = 0;
  double transient_per_sample = 0;
  std::vector<std::pair<int64_t, double>> step_seconds;
  std::vector<std::pair<int64_t, int64_t>> transient_peaks;
  /// Intra-op threads the steps ran with; 0 = the profile's own count (Profile::threads).
  int64_t threads = 0;

  double transient_bytes(int64_t batch) const {
    return bounded_transient(transient_static, transient_per_sample, transient_peaks, batch);
  }
  double step_seconds_per_sample(int64_t batch) const {
    return interpolated_seconds(step_seconds, batch);
  }
};

struct UnitProfile {
  int64_t unit = 0;
  std::vector<int64_t> input_shape, output_shape;   ///< per sample (C, H, W)
  AuxHeadSpec head;
  int64_t param_bytes = 0;       ///< unit + head
  int64_t grad_bytes = 0;
  int64_t optimizer_bytes = 0;   ///< optimizer state after a step (momentum, Adam moments)
  /// A training step's transient peak (above what was live before it: weights, gradients,
  /// optimizer state, the input batch) fitted over the measured batch sizes as
  /// transient_static + transient_per_sample * b.
  double transient_static = 0;
  double transient_per_sample = 0;
  /// Measured seconds per sample of a training step (forward, backward, optimizer), per batch.
  std::vector<std::pair<int64_t, double>> step_seconds;
  /// Eval-mode forward seconds per sample (the caching pass), at the largest measured batch.
  double forward_seconds_per_sample = 0;
  /// The raw measurements the fit came from: (batch, transient peak bytes).
  std::vector<std::pair<int64_t, int64_t>> transient_peaks;
  /// The other modes the unit can train in, measured the same way (empty when
  /// neuroflux.unit_modes is "plain").
  std::vector<UnitModeProfile> alternatives;
  /// The plain step again at fewer intra-op threads (neuroflux.block_threads = "auto"): ATen's
  /// per-thread scratch buffers make a step's transient grow with the thread count, so a block
  /// may fit only with fewer. Each entry names its `threads`.
  std::vector<UnitModeProfile> at_fewer_threads;
  /// What was live at the peak of one plain step per measured batch, by operator (only when the
  /// profiler was asked to trace allocations: `neuroflux profile --allocations`).
  std::vector<AllocationsAtPeak> allocations;

  /// Every mode's figures, plain first.
  std::vector<UnitModeProfile> modes() const;
  /// The plain step at `threads` (an at_fewer_threads entry); nullptr when not measured.
  const UnitModeProfile* plain_at(int64_t threads) const;

  int64_t static_bytes() const { return param_bytes + grad_bytes + optimizer_bytes; }
  int64_t input_bytes_per_sample() const;    ///< float32 input
  int64_t output_bytes_per_sample() const;
  double transient_bytes(int64_t batch) const {
    return bounded_transient(transient_static, transient_per_sample, transient_peaks, batch);
  }
  /// Step seconds per sample at `batch`: interpolated in log2(batch) between measured sizes,
  /// the nearest measurement beyond them.
  double step_seconds_per_sample(int64_t batch) const;
};

struct Profile {
  std::string model, device;
  int64_t num_classes = 0;
  int64_t threads = 0;  ///< intra-op threads of the units' main figures; 0 = not recorded
  std::vector<UnitProfile> units;
  double seconds = 0;   ///< how long profiling took

  nlohmann::json to_json() const;
  static Profile from_json(const nlohmann::json& json);
  std::string table() const;
  /// Thread counts below `threads` at which every unit's plain step was measured, descending.
  std::vector<int64_t> fewer_thread_counts() const;
  /// The traced allocations of every unit: per step, its largest `entries` operators.
  std::string allocations_table(size_t entries) const;
};

}  // namespace neuroflux
