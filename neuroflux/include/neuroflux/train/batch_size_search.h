// Finding the largest batch that fits a memory budget, by running real steps under the meter's
// limit rather than estimating.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "neuroflux/memory/memory_meter.h"

namespace neuroflux {

/// Runs representative work at a batch size (two training steps, say). It must leave nothing
/// live behind except what the real run also keeps (parameters, optimizer state).
using BatchTrial = std::function<void(int64_t batch_size)>;

struct BatchFit {
  int64_t batch_size = 0;
  int64_t peak_bytes = 0;   ///< measured peak of the trial at that batch size
};

/// Peak live bytes while `trial(batch_size)` runs, with no limit: an UnbudgetedProbe, named in
/// the log and the report, never part of a phase's peak.
int64_t measure_trial_peak(MemoryMeter& meter, const BatchTrial& trial, int64_t batch_size);

/// Whether `trial(batch_size)` completes under `budget`; its peak goes to `peak` if it does.
bool trial_fits(MemoryMeter& meter, std::optional<int64_t> budget, const BatchTrial& trial,
                int64_t batch_size, int64_t* peak = nullptr);

/// The largest batch in [2, max_batch] (batch norm cannot train on one sample) whose trial fits `budget`: doubling, then bisection to
/// within ~3%. Throws BudgetError naming the budget and the smallest one that fits batch 2
/// when nothing fits. `what` names the work in messages ("backprop vgg11").
BatchFit largest_fitting_batch(MemoryMeter& meter, std::optional<int64_t> budget,
                               int64_t max_batch, const BatchTrial& trial,
                               const std::string& what);

/// Throws BudgetError when `batch_size` does not fit; the message names the budget, the peak that
/// batch needs and the largest batch that would fit.
BatchFit require_batch_fits(MemoryMeter& meter, std::optional<int64_t> budget, int64_t batch_size,
                            const BatchTrial& trial, const std::string& what);

}  // namespace neuroflux
