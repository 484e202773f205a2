#include "neuroflux/plan/module_choice.h"

#include <algorithm>
#include <limits>

#include "neuroflux/models/unit_groups.h"

namespace neuroflux {

int64_t auto_module_min_batch(const PlannerInputs& inputs) {
  return std::min(inputs.max_batch_size, std::max<int64_t>(8, inputs.reference_batch_size / 4));
}

ModuleChoice choose_modules(std::vector<int64_t> stages, const PlannerInputs& inputs,
                            const ModuleProfiler& profile_of) {
  ModuleChoice choice;
  choice.sizes = std::move(stages);
  const int64_t min_batch = auto_module_min_batch(inputs);
  while (true) {
    choice.profile = profile_of(choice.sizes);
    ++choice.rounds;
    if (!inputs.budget) return choice;
    const Planner planner(choice.profile, inputs);
    int64_t worst = -1;
    int64_t worst_batch = std::numeric_limits<int64_t>::max();
    for (size_t i = 0; i < choice.sizes.size(); ++i) {
      if (choice.sizes[i] < 2) continue;
      const auto unit = static_cast<int64_t>(i);
      const int64_t batch = planner.largest_batch(unit, unit, /*any_mode=*/true);
      if (batch < min_batch && batch < worst_batch) {
        worst = unit;
        worst_batch = batch;
      }
    }
    if (worst < 0) return choice;
    choice.sizes = split_module(choice.sizes, static_cast<size_t>(worst));
  }
}

}  // namespace neuroflux
