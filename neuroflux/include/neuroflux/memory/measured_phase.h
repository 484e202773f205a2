// One measured phase of a run: every phase of every method (profiling, batch trials, training,
// validation, checkpoints, cache writing and recomputing, test, export, resume) runs inside one,
// so the methods' peaks are measured alike (docs/architecture.md, "How memory is measured").
//
// A phase sets the limit to the run's budget, resets the peak, and on leaving (normally or by an
// exception) records its peak into the run's PhasePeaks under its name, restores the limit it
// found and hands its peak to the phase around it. Phases nest: MemoryMeter::reset_peak() inside
// a phase (a batch trial, a profiled step) first carries the peak so far into the phase, so no
// reset loses it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/util/phase_peaks.h"

namespace neuroflux {

class MeasuredPhase {
 public:
  /// `budget`: memory.budget (nullopt only for a run without one).
  MeasuredPhase(MemoryMeter& meter, PhasePeaks& peaks, std::string name,
                std::optional<int64_t> budget);
  ~MeasuredPhase();
  MeasuredPhase(const MeasuredPhase&) = delete;
  MeasuredPhase& operator=(const MeasuredPhase&) = delete;

  /// The highest live bytes since the phase began, its nested phases included.
  int64_t peak() const;
  const std::string& name() const { return name_; }

  /// The innermost phase (or probe) alive on this thread; null outside every phase.
  static MeasuredPhase* innermost();
  /// MemoryMeter::reset_peak calls this first: the innermost phase keeps the peak so far.
  static void carry_peak_before_reset(const MemoryMeter& meter);

 protected:
  enum class Kind { kPhase, kProbe };
  MeasuredPhase(MemoryMeter& meter, PhasePeaks* peaks, std::string name,
                std::optional<int64_t> limit, Kind kind);

 private:
  MemoryMeter& meter_;
  PhasePeaks* peaks_;  ///< where the peak goes; a probe's: the enclosing phase's (or none)
  std::string name_;
  Kind kind_;
  std::optional<int64_t> previous_limit_;
  int64_t carried_ = 0;
  MeasuredPhase* parent_;
};

/// A measurement that must exceed the budget: what a batch the budget refused would need (for the
/// message naming the smallest budget that works), or a unit profiled at a batch the budget
/// refuses (so the planner can extrapolate). It lifts the limit, logs its name and peak, records
/// the peak as a probe of the enclosing phase's run (report.json's `unbudgeted_probe_peaks`) and
/// adds nothing to any phase's peak: no device could have run it, so no method is credited or
/// charged for it.
class UnbudgetedProbe : public MeasuredPhase {
 public:
  UnbudgetedProbe(MemoryMeter& meter, std::string name);
  ~UnbudgetedProbe();
  UnbudgetedProbe(const UnbudgetedProbe&) = delete;
  UnbudgetedProbe& operator=(const UnbudgetedProbe&) = delete;
};

/// Runs `step` under the limit in force; when that refuses an allocation, runs it again inside an
/// UnbudgetedProbe named `probe`. Other errors propagate.
void run_or_probe(MemoryMeter& meter, const std::string& probe, const std::function<void()>& step);

}  // namespace neuroflux
