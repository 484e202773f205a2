// neuroflux.module_units = "auto": the planner chooses the gradient-isolated modules.
//
// Fewer, larger modules are more accurate (one module per resolution stage with deep heads
// added 0.4 points of test accuracy on resnet18 and trained faster than one module per unit, see
// RESULTS.md), but a module's units train together, so its activations are all alive at once and
// under a tight budget its block may only fit at a tiny batch. The rule values accuracy through
// the batch: start from one module per stage and, while some module can train alone only at a
// batch below `min_batch` (a quarter of the batch train.lr is tuned for, at least 8), split the
// one with the smallest such batch into two halves and profile again. A module of one unit is
// never split; if it cannot fit, the planner reports the smallest feasible budget as usual.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "neuroflux/plan/planner.h"
#include "neuroflux/profile/profile.h"

namespace neuroflux {

struct ModuleChoice {
  std::vector<int64_t> sizes;  ///< built units per module
  Profile profile;             ///< of the chain grouped by `sizes`
  int64_t rounds = 0;          ///< groupings profiled
};

/// Profiles the chain grouped by the given sizes (one unit per module in the profile).
using ModuleProfiler = std::function<Profile(const std::vector<int64_t>& sizes)>;

/// The smallest batch a module is worth keeping whole for (see above).
int64_t auto_module_min_batch(const PlannerInputs& inputs);

/// The rule above, from `stages` (one module per resolution stage). Without a budget the stages
/// stand.
ModuleChoice choose_modules(std::vector<int64_t> stages, const PlannerInputs& inputs,
                            const ModuleProfiler& profile_of);

}  // namespace neuroflux
