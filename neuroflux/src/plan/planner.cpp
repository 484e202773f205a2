#include "neuroflux/plan/planner.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "neuroflux/util/errors.h"
#include "neuroflux/util/size_format.h"

namespace neuroflux {

namespace {
// Batch norm cannot train on one sample: the smallest batch a block may be given.
constexpr int64_t kMinBatch = 2;
// Blocks are planned to this share of the budget: the fitted peaks are within a few percent of
// the measured ones (a 20% bound is tested), and a plan that overruns fails its run. Measured on
// vgg11 / Fashion-MNIST: a block planned to 99.99% of the budget peaked 1.6% over it.
constexpr double kHeadroom = 0.9;
}  // namespace

PlannerInputs planner_inputs(const Config& config, int64_t train_samples, int64_t val_samples,
                             int64_t test_samples) {
  PlannerInputs in;
  in.train_samples = train_samples;
  in.val_samples = val_samples;
  in.test_samples = test_samples;
  in.epochs = config.train.epochs;
  in.max_batch_size = std::min(config.train.max_batch_size, std::max<int64_t>(1, train_samples));
  in.reference_batch_size = lr_reference_batch(config.train);
  in.shallow_epoch_fraction = config.neuroflux.shallow_epoch_fraction;
  in.base_lr = config.train.lr;
  in.augment = config.data.augment;
  in.half_cache = config.neuroflux.cache_dtype == "float16";
  in.budget = config.memory.budget;
  return in;
}

Planner::Planner(Profile profile, PlannerInputs inputs)
    : profile_(std::move(profile)), inputs_(std::move(inputs)) {}

double Planner::input_factor(int64_t first) const {
  // Block 0 reads the data set: the gathered batch, plus its augmented copy. Later blocks read a
  // cache: the gathered storage-dtype rows, their float32 copy, and the next batch the loader
  // prefetches meanwhile.
  if (first == 0) return inputs_.augment ? 2.0 : 1.0;
  return 2.0 + (inputs_.half_cache ? 0.5 : 1.0);
}

namespace {

const UnitModeProfile* find_mode(const std::vector<UnitModeProfile>& modes, const std::string& name) {
  for (const auto& m : modes)
    if (m.mode == name) return &m;
  return nullptr;
}

}  // namespace

double Planner::predicted_peak(int64_t first, int64_t last, int64_t batch) const {
  return predicted_peak(first, last, batch, {});
}

double Planner::block_base(int64_t first, int64_t last, int64_t batch) const {
  double fixed = 0;
  for (int64_t i = first; i <= last; ++i)
    fixed += static_cast<double>(profile_.units[i].static_bytes());
  return fixed + input_factor(first) * static_cast<double>(batch) *
                     static_cast<double>(profile_.units[first].input_bytes_per_sample());
}

const UnitModeProfile* Planner::figures(int64_t i, const std::string& mode, int64_t threads) const {
  const UnitProfile& u = profile_.units[i];
  if (threads > 0) return u.plain_at(threads);  // fewer threads: plain steps only
  return mode == "plain" ? nullptr : find_mode(u.alternatives, mode);
}

double Planner::unit_peak(int64_t first, int64_t i, int64_t batch, const std::string& mode,
                          int64_t threads) const {
  const UnitProfile& u = profile_.units[i];
  // Inside a block, a unit's input is the previous unit's output, alive during its step.
  const double carried =
      i > first ? static_cast<double>(batch) * static_cast<double>(u.input_bytes_per_sample()) : 0.0;
  const UnitModeProfile* m = figures(i, mode, threads);
  return (m ? m->transient_bytes(batch) : u.transient_bytes(batch)) + carried;
}

double Planner::predicted_peak(int64_t first, int64_t last, int64_t batch,
                               const std::vector<std::string>& modes, int64_t threads) const {
  // Units of a block train one after another: the peak is the worst single unit's step.
  double worst = 0;
  for (int64_t i = first; i <= last; ++i)
    worst = std::max(worst, unit_peak(first, i, batch,
                                      modes.empty() ? "plain" : modes[static_cast<size_t>(i - first)],
                                      threads));
  return block_base(first, last, batch) + worst;
}

std::vector<std::string> Planner::choose_modes(int64_t first, int64_t last, int64_t batch) const {
  std::vector<std::string> modes(static_cast<size_t>(last - first + 1), "plain");
  if (!inputs_.budget) return modes;
  const double room = kHeadroom * static_cast<double>(*inputs_.budget) - block_base(first, last, batch);
  for (int64_t i = first; i <= last; ++i) {
    if (unit_peak(first, i, batch, "plain") <= room) continue;
    const UnitModeProfile* best = nullptr;
    for (const auto& m : profile_.units[i].alternatives)
      if (unit_peak(first, i, batch, m.mode) <= room &&
          (!best || m.step_seconds_per_sample(batch) < best->step_seconds_per_sample(batch)))
        best = &m;
    if (!best) return {};
    modes[static_cast<size_t>(i - first)] = best->mode;
  }
  return modes;
}

int64_t Planner::largest_batch(int64_t first, int64_t last, bool any_mode, int64_t threads) const {
  if (!inputs_.budget) return inputs_.max_batch_size;
  const double budget = kHeadroom * static_cast<double>(*inputs_.budget);
  auto fits = [&](int64_t batch) {
    if (any_mode) return !choose_modes(first, last, batch).empty();
    return predicted_peak(first, last, batch, {}, threads) <= budget;
  };
  if (!fits(kMinBatch)) return 0;
  // Every mode's peak is a maximum of lines in the batch, so it is monotone: bisection is exact.
  int64_t lo = kMinBatch, hi = std::max(kMinBatch, inputs_.max_batch_size);
  if (fits(hi)) return hi;
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (fits(mid) ? lo : hi) = mid;
  }
  return lo;
}

int64_t Planner::cache_batch(int64_t first, int64_t last) const {
  // Forward only: a unit's eval forward holds at most what its training step holds (which also
  // keeps every saved activation), so the step's per-sample transient bounds it. The gradients
  // and optimizer state are counted too: validation runs between training epochs.
  constexpr int64_t kMaxCacheBatch = 1024;
  double fixed = 0, per_sample = 0;
  for (int64_t i = first; i <= last; ++i) {
    const UnitProfile& u = profile_.units[i];
    fixed += static_cast<double>(u.static_bytes()) + u.transient_static;
    per_sample = std::max(per_sample, u.transient_per_sample +
                                          static_cast<double>(u.input_bytes_per_sample()));
  }
  per_sample += static_cast<double>(profile_.units[first].input_bytes_per_sample());
  if (!inputs_.budget) return kMaxCacheBatch;
  // Half the room: the bound is per layer, and the eval path's temporaries (the cached rows read
  // in float16 and converted, the head's maps) are not in the profile. An out-of-memory in the
  // caching pass would lose a trained block's work; a smaller batch only costs a little speed.
  const double room = 0.5 * (static_cast<double>(*inputs_.budget) - fixed);
  return std::clamp<int64_t>(static_cast<int64_t>(room / per_sample), 1, kMaxCacheBatch);
}

int64_t Planner::block_epochs(int64_t last) const {
  const auto n = static_cast<int64_t>(profile_.units.size());
  const double depth = n > 1 ? static_cast<double>(last) / static_cast<double>(n - 1) : 1.0;
  const double share = inputs_.shallow_epoch_fraction + (1.0 - inputs_.shallow_epoch_fraction) * depth;
  return std::max<int64_t>(1, std::llround(static_cast<double>(inputs_.epochs) * share));
}

double Planner::predicted_seconds(int64_t first, int64_t last, int64_t batch) const {
  return predicted_seconds(first, last, batch, {});
}

double Planner::predicted_seconds(int64_t first, int64_t last, int64_t batch,
                                  const std::vector<std::string>& modes, int64_t threads) const {
  double step = 0, forward = 0;
  for (int64_t i = first; i <= last; ++i) {
    const UnitProfile& u = profile_.units[i];
    const UnitModeProfile* mode =
        figures(i, modes.empty() ? "plain" : modes[static_cast<size_t>(i - first)], threads);
    const double unit_step = u.step_seconds_per_sample(batch);
    const double mode_step = mode ? mode->step_seconds_per_sample(batch) : unit_step;
    step += mode_step;
    // The forward pass was timed at the run's thread count only: at fewer threads it is taken
    // to slow down as the plain step did.
    const double slowdown = threads > 0 && unit_step > 0 ? mode_step / unit_step : 1.0;
    forward += u.forward_seconds_per_sample * slowdown;
  }
  const auto epochs = static_cast<double>(block_epochs(last));
  double seconds = epochs * (static_cast<double>(inputs_.train_samples) * step +
                             static_cast<double>(inputs_.val_samples) * forward);
  const bool last_block = last + 1 == static_cast<int64_t>(profile_.units.size());
  if (!last_block)
    seconds += static_cast<double>(inputs_.train_samples + inputs_.val_samples +
                                   inputs_.test_samples) * forward;
  return seconds;
}

Plan Planner::plan() const {
  const auto n = static_cast<int64_t>(profile_.units.size());
  Plan plan;
  plan.budget_bytes = inputs_.budget;
  for (const auto& u : profile_.units) plan.heads.push_back(u.head);
  // Each unit alone at batch 2 in its leanest mode: what any plan needs at least.
  double smallest = 0;
  const std::vector<int64_t> fewer_threads = profile_.fewer_thread_counts();
  for (int64_t i = 0; i < n; ++i) {
    double leanest = unit_peak(i, i, kMinBatch, "plain");
    for (const auto& m : profile_.units[i].alternatives)
      leanest = std::min(leanest, unit_peak(i, i, kMinBatch, m.mode));
    for (const int64_t threads : fewer_threads)
      leanest = std::min(leanest, unit_peak(i, i, kMinBatch, "plain", threads));
    smallest = std::max(smallest, block_base(i, i, kMinBatch) + leanest);
  }
  plan.smallest_feasible_budget = static_cast<int64_t>(std::ceil(smallest / kHeadroom));
  if (inputs_.budget && *inputs_.budget < plan.smallest_feasible_budget)
    throw BudgetError("memory.budget " + format_size(*inputs_.budget, true) +
                          " fits no plan for " + profile_.model +
                          ": even one unit per block at batch 2 needs " +
                          format_size(static_cast<int64_t>(std::ceil(smallest)), true) +
                          " (planned with 10% headroom)" +
                          "; the smallest budget that would work is " +
                          format_size(plan.smallest_feasible_budget, true),
                      plan.smallest_feasible_budget);

  // best[j]: least predicted seconds to train units [0, j); from[j]: where its last block starts.
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> best(n + 1, inf);
  std::vector<int64_t> from(n + 1, -1), batch_of(n + 1, 0), threads_of(n + 1, 0);
  std::vector<std::vector<std::string>> modes_of(n + 1);
  best[0] = 0;
  for (int64_t j = 1; j <= n; ++j) {
    for (int64_t a = 0; a < j; ++a) {
      if (best[a] == inf) continue;
      // Two candidates per block: the largest batch with every unit plain, and the larger one
      // other modes allow (recomputing or striping costs time; a larger batch may win it back).
      // With fewer threads measured, one more per count: every unit plain at that count.
      struct Candidate {
        int64_t batch;
        std::vector<std::string> modes;
        int64_t threads;
      };
      const std::vector<std::string> all_plain(static_cast<size_t>(j - a), "plain");
      const int64_t plain_batch = largest_batch(a, j - 1);
      const int64_t any_batch = largest_batch(a, j - 1, /*any_mode=*/true);
      std::vector<Candidate> candidates;
      if (plain_batch >= 1) candidates.push_back({plain_batch, all_plain, 0});
      if (any_batch > plain_batch)
        candidates.push_back({any_batch, choose_modes(a, j - 1, any_batch), 0});
      for (const int64_t threads : fewer_threads) {
        const int64_t batch = largest_batch(a, j - 1, /*any_mode=*/false, threads);
        if (batch > plain_batch) candidates.push_back({batch, all_plain, threads});
      }
      for (const Candidate& c : candidates) {
        const double t = best[a] + predicted_seconds(a, j - 1, c.batch, c.modes, c.threads);
        if (t < best[j]) {
          best[j] = t;
          from[j] = a;
          batch_of[j] = c.batch;
          modes_of[j] = c.modes;
          threads_of[j] = c.threads;
        }
      }
    }
  }
  TORCH_INTERNAL_ASSERT(best[n] < inf, "planner: singleton blocks fit, so a plan must exist");
  std::vector<PlannedBlock> reversed;
  for (int64_t j = n; j > 0; j = from[j]) {
    PlannedBlock b;
    b.first_unit = from[j];
    b.last_unit = j - 1;
    b.batch_size = batch_of[j];
    b.epochs = block_epochs(b.last_unit);
    b.lr = scaled_lr(inputs_.base_lr, b.batch_size, inputs_.reference_batch_size);
    b.cache_batch_size = cache_batch(b.first_unit, b.last_unit);
    b.unit_modes = modes_of[j];
    b.threads = threads_of[j];
    b.predicted_peak_bytes = static_cast<int64_t>(std::ceil(
        predicted_peak(b.first_unit, b.last_unit, b.batch_size, b.unit_modes, b.threads)));
    b.predicted_seconds =
        predicted_seconds(b.first_unit, b.last_unit, b.batch_size, b.unit_modes, b.threads);
    reversed.push_back(b);
  }
  plan.blocks.assign(reversed.rbegin(), reversed.rend());
  plan.predicted_seconds = best[n];
  return plan;
}

}  // namespace neuroflux
