#include "neuroflux/memory/measured_phase.h"

#include <algorithm>

#include "neuroflux/util/progress.h"
#include "neuroflux/util/size_format.h"

namespace neuroflux {

namespace {
thread_local MeasuredPhase* t_innermost_phase = nullptr;
}  // namespace

MeasuredPhase::MeasuredPhase(MemoryMeter& meter, PhasePeaks& peaks, std::string name,
                             std::optional<int64_t> budget)
    : MeasuredPhase(meter, &peaks, std::move(name), budget, Kind::kPhase) {}

MeasuredPhase::MeasuredPhase(MemoryMeter& meter, PhasePeaks* peaks, std::string name,
                             std::optional<int64_t> limit, Kind kind)
    : meter_(meter),
      peaks_(peaks),
      name_(std::move(name)),
      kind_(kind),
      previous_limit_(meter.limit()),
      parent_(t_innermost_phase) {
  // A probe reports to the run whose phase it runs in.
  if (kind_ == Kind::kProbe && parent_ != nullptr) peaks_ = parent_->peaks_;
  meter_.set_limit(limit);
  meter_.reset_peak();  // carries the enclosing phase's peak so far into it
  carried_ = meter_.peak();
  t_innermost_phase = this;
}

MeasuredPhase::~MeasuredPhase() {
  const int64_t bytes = peak();
  try {
    if (kind_ == Kind::kPhase) {
      peaks_->record(name_, bytes);
      peaks_->record_limit(name_, meter_.limit());
    } else {
      if (peaks_ != nullptr) peaks_->record_probe(name_, bytes);
      log_line("unbudgeted probe " + name_ + ": peak " + format_size(bytes));
      // What the probe allocated is no part of the enclosing phase: start its peak afresh.
      meter_.reset_peak();
    }
  } catch (...) {
    // A destructor must not throw (it may run during unwinding); the peak is lost, not the run.
  }
  t_innermost_phase = parent_;
  meter_.set_limit(previous_limit_);
  if (parent_ != nullptr && kind_ == Kind::kPhase && &parent_->meter_ == &meter_)
    parent_->carried_ = std::max(parent_->carried_, bytes);
}

int64_t MeasuredPhase::peak() const { return std::max(carried_, meter_.peak()); }

MeasuredPhase* MeasuredPhase::innermost() { return t_innermost_phase; }

void MeasuredPhase::carry_peak_before_reset(const MemoryMeter& meter) {
  MeasuredPhase* phase = t_innermost_phase;
  if (phase != nullptr && &phase->meter_ == &meter)
    phase->carried_ = std::max(phase->carried_, meter.peak());
}

UnbudgetedProbe::UnbudgetedProbe(MemoryMeter& meter, std::string name)
    : MeasuredPhase(meter, nullptr, std::move(name), std::nullopt, Kind::kProbe) {}

UnbudgetedProbe::~UnbudgetedProbe() = default;

void run_or_probe(MemoryMeter& meter, const std::string& probe,
                  const std::function<void()>& step) {
  try {
    step();
    return;
  } catch (const std::exception& e) {
    if (!is_out_of_memory(e)) throw;
  }
  UnbudgetedProbe unbudgeted(meter, probe);
  step();
}

}  // namespace neuroflux
