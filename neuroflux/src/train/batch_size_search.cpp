#include "neuroflux/train/batch_size_search.h"

#include "neuroflux/memory/measured_phase.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/util/size_format.h"
#include "neuroflux/util/progress.h"

namespace neuroflux {

namespace {
// Batch norm cannot train on a batch of one sample, so the smallest batch tried is two.
constexpr int64_t kSmallestBatch = 2;
}  // namespace

int64_t measure_trial_peak(MemoryMeter& meter, const BatchTrial& trial, int64_t batch_size) {
  // Beyond the budget by design: the message names the budget that would work.
  const UnbudgetedProbe probe(meter, "batch_trial_needs");
  trial(batch_size);
  return probe.peak();
}

bool trial_fits(MemoryMeter& meter, std::optional<int64_t> budget, const BatchTrial& trial,
                int64_t batch_size, int64_t* peak) {
  MemoryLimitGuard limit(meter, budget);
  try {
    trial(batch_size);
  } catch (const std::exception& e) {
    if (!is_out_of_memory(e)) throw;
    return false;
  }
  if (peak != nullptr) *peak = meter.peak();
  return true;
}

BatchFit largest_fitting_batch(MemoryMeter& meter, std::optional<int64_t> budget,
                               int64_t max_batch, const BatchTrial& trial,
                               const std::string& what) {
  BatchFit best;
  int64_t peak = 0;
  if (!trial_fits(meter, budget, trial, kSmallestBatch, &peak)) {
    const int64_t needed = measure_trial_peak(meter, trial, kSmallestBatch);
    throw BudgetError("memory.budget " + format_size(*budget, true) + " fits no batch for " +
                          what + ": batch " + std::to_string(kSmallestBatch) + " needs a peak of " + format_size(needed, true) +
                          "; the smallest budget that would work is " +
                          format_size(needed, true),
                      needed);
  }
  best = {kSmallestBatch, peak};
  if (!budget) {
    best.batch_size = max_batch;
    trial_fits(meter, budget, trial, max_batch, &best.peak_bytes);  // no limit: it fits
    return best;
  }
  // Doubling finds a bracket [lo fits, hi fails]; bisection narrows it.
  int64_t lo = kSmallestBatch, hi = max_batch + 1;
  for (int64_t b = 2 * kSmallestBatch; b <= max_batch; b *= 2) {
    if (trial_fits(meter, budget, trial, b, &peak)) {
      lo = b;
      best = {b, peak};
    } else {
      hi = b;
      break;
    }
  }
  if (hi == max_batch + 1 && lo < max_batch) {
    if (trial_fits(meter, budget, trial, max_batch, &peak)) return {max_batch, peak};
    hi = max_batch;
  }
  while (hi - lo > std::max<int64_t>(1, lo / 32)) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (trial_fits(meter, budget, trial, mid, &peak)) {
      lo = mid;
      best = {mid, peak};
    } else {
      hi = mid;
    }
  }
  log_line("largest batch for " + what + " under " + format_size(*budget) + ": " +
           std::to_string(best.batch_size) + " (peak " + format_size(best.peak_bytes) + ")");
  return best;
}

BatchFit require_batch_fits(MemoryMeter& meter, std::optional<int64_t> budget, int64_t batch_size,
                            const BatchTrial& trial, const std::string& what) {
  int64_t peak = 0;
  if (trial_fits(meter, budget, trial, batch_size, &peak)) return {batch_size, peak};
  const int64_t needed = measure_trial_peak(meter, trial, batch_size);
  std::string hint;
  int64_t smallest = needed;
  try {
    const BatchFit fit = largest_fitting_batch(meter, budget, batch_size, trial, what);
    hint = "; the largest batch that fits is " + std::to_string(fit.batch_size) +
           " (train.batch_size = \"auto\" finds it)";
  } catch (const BudgetError& e) {
    smallest = e.smallest_feasible_bytes();
    hint = "; no batch fits: the smallest budget that would work (batch " +
           std::to_string(kSmallestBatch) + ") is " +
           format_size(smallest, true);
  }
  throw BudgetError("memory.budget " + format_size(*budget, true) + " is too small for " + what +
                        " at train.batch_size " + std::to_string(batch_size) +
                        ", which needs a peak of " + format_size(needed, true) + hint,
                    smallest);
}

}  // namespace neuroflux
