// The planner: cuts the unit chain into consecutive blocks and gives each its batch size, so that
// every block's predicted peak fits the budget and the predicted training time is the least the
// profile allows. A dynamic program over cut points, not a greedy guess.
//
// Memory of a block [a, b] at batch B (units train one after another, each unit's input
// detached, so only one unit's activations are alive at a time):
//   static(a..b) + input_factor * B * in(a) + max_i (transient_i(B) + [i > a] * B * in(i))
// where static is parameters + gradients + optimizer state of the block's units and heads,
// input_factor counts the copies of the block's input batch (gathered batch, the prefetched
// next batch, the float16 read), and transient_i is the profiled fit of unit i's step peak.
//
// Time of a block: epochs(b) * N_train * sum_i step_seconds_i(B)   (training)
//                + N_val * sum_i forward_i per epoch             (evaluation)
//                + N_all * sum_i forward_i, unless it is last     (the caching pass)
// where epochs(b) follows FreezeOut over depth (block_epochs): a block ending at a shallow unit
// trains fewer epochs, so cutting a shallow block off saves time, not only memory.
//
// Candidates per block: every unit plain at the largest batch that fits; other unit modes where
// they allow a larger batch; and, when the profile measured steps at fewer intra-op threads
// (neuroflux.block_threads = "auto"), every unit plain at each such count where that allows a
// larger batch than the run's count. The cheapest predicted time wins.
#pragma once

#include <cstdint>
#include <optional>

#include "neuroflux/config/config.h"
#include "neuroflux/plan/lr_scaling.h"
#include "neuroflux/plan/plan.h"
#include "neuroflux/profile/profile.h"

namespace neuroflux {

struct PlannerInputs {
  int64_t train_samples = 0, val_samples = 0, test_samples = 0;
  int64_t epochs = 1;
  double shallow_epoch_fraction = 1.0;    ///< the first unit's share of `epochs` (FreezeOut)
  int64_t max_batch_size = 256;
  int64_t reference_batch_size = 128;   ///< the batch train.lr is tuned for
  double base_lr = 0.05;
  bool augment = false;
  bool half_cache = true;                 ///< cache stored as float16
  std::optional<int64_t> budget;
};

PlannerInputs planner_inputs(const Config& config, int64_t train_samples, int64_t val_samples,
                             int64_t test_samples);

class Planner {
 public:
  Planner(Profile profile, PlannerInputs inputs);

  /// The best plan; BudgetError naming the smallest feasible budget when none fits.
  Plan plan() const;

  /// Predicted training peak of block [first, last] at `batch`, every unit plain or in
  /// `modes` (one per unit of the block, names from the profile's alternatives).
  double predicted_peak(int64_t first, int64_t last, int64_t batch) const;
  /// `threads` > 0: every unit plain at that many intra-op threads (Profile::fewer_thread_counts).
  double predicted_peak(int64_t first, int64_t last, int64_t batch,
                        const std::vector<std::string>& modes, int64_t threads = 0) const;
  /// The mode of each unit at `batch`: plain where the block then fits, else the fastest of
  /// the unit's profiled alternatives that fits; empty when some unit fits in no mode.
  std::vector<std::string> choose_modes(int64_t first, int64_t last, int64_t batch) const;
  /// Largest batch (<= max_batch_size) whose predicted peak fits 90% of the budget (headroom
  /// for the fit's error), every unit plain, or (`any_mode`) in the modes choose_modes picks;
  /// 0 when none.
  int64_t largest_batch(int64_t first, int64_t last, bool any_mode = false,
                        int64_t threads = 0) const;
  /// Predicted seconds of block [first, last] at `batch` (every unit plain, or in `modes`).
  double predicted_seconds(int64_t first, int64_t last, int64_t batch) const;
  double predicted_seconds(int64_t first, int64_t last, int64_t batch,
                           const std::vector<std::string>& modes, int64_t threads = 0) const;
  /// Epochs of a block whose deepest unit is `last`: round(epochs * t), t rising linearly from
  /// shallow_epoch_fraction at unit 0 to 1 at the last unit; at least 1.
  int64_t block_epochs(int64_t last) const;
  /// The eval-mode caching pass's batch: forward only, no activations kept.
  int64_t cache_batch(int64_t first, int64_t last) const;

 private:
  double input_factor(int64_t first) const;
  /// Static bytes of the block's units plus its input batch.
  double block_base(int64_t first, int64_t last, int64_t batch) const;
  /// Unit i's step in `mode` (at `threads`, 0 = the profile's own count) inside a block
  /// starting at `first`: transient plus carried input.
  double unit_peak(int64_t first, int64_t i, int64_t batch, const std::string& mode,
                   int64_t threads = 0) const;
  /// Unit i's measured figures in `mode` at `threads`; nullptr = the plain step's own.
  const UnitModeProfile* figures(int64_t i, const std::string& mode, int64_t threads) const;

  Profile profile_;
  PlannerInputs inputs_;
};

}  // namespace neuroflux
