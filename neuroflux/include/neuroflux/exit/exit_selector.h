// Early exit: the shallowest unit whose head is as accurate as the best, within a tolerance.
// Shipping units 0..exit plus that head gives a model that is as good and much smaller.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace neuroflux {

struct ExitChoice {
  int64_t unit = 0;
  double val_accuracy = 0;
  int64_t best_unit = 0;
  double best_val_accuracy = 0;
};

/// `head_val_accuracy[i]` is unit i's head accuracy, nullopt for units never trained. The
/// shallowest trained unit with accuracy >= best - tolerance wins.
ExitChoice select_exit(const std::vector<std::optional<double>>& head_val_accuracy,
                       double tolerance);

}  // namespace neuroflux
