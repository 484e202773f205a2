#include "neuroflux/exit/exit_selector.h"

#include <c10/util/Exception.h>

namespace neuroflux {

ExitChoice select_exit(const std::vector<std::optional<double>>& head_val_accuracy,
                       double tolerance) {
  ExitChoice choice;
  bool any = false;
  for (size_t i = 0; i < head_val_accuracy.size(); ++i) {
    const auto& acc = head_val_accuracy[i];
    if (acc && (!any || *acc > choice.best_val_accuracy)) {
      choice.best_val_accuracy = *acc;
      choice.best_unit = static_cast<int64_t>(i);
      any = true;
    }
  }
  TORCH_CHECK(any, "select_exit: no unit has been trained");
  for (size_t i = 0; i < head_val_accuracy.size(); ++i) {
    const auto& acc = head_val_accuracy[i];
    // A small epsilon keeps "exactly at the tolerance" from flipping on rounding.
    if (acc && *acc >= choice.best_val_accuracy - tolerance - 1e-12) {
      choice.unit = static_cast<int64_t>(i);
      choice.val_accuracy = *acc;
      break;
    }
  }
  return choice;
}

bool ProgressiveExit::after_block(double best_before, double best_after) {
  without_gain_ = best_after - best_before > tolerance_ ? 0 : without_gain_ + 1;
  return without_gain_ >= patience_;
}

}  // namespace neuroflux
