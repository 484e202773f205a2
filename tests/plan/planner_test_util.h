// What the planner tests share: a data set of CIFAR's size and 5 epochs, under `budget`.
#pragma once

#include <cstdint>
#include <optional>

#include "neuroflux/plan/planner.h"

namespace neuroflux::test {

inline PlannerInputs planner_inputs(std::optional<int64_t> budget) {
  PlannerInputs in;
  in.train_samples = 50000;
  in.val_samples = 5000;
  in.test_samples = 10000;
  in.epochs = 5;
  in.max_batch_size = 256;
  in.budget = budget;
  return in;
}

}  // namespace neuroflux::test
