#include "neuroflux/exit/exit_selector.h"

#include <c10/util/Exception.h>

#include <algorithm>

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

ExitChoice select_exit(const std::vector<std::optional<double>>& head_val_accuracy,
                       const std::vector<std::optional<double>>& pair_val_accuracy,
                       double tolerance) {
  struct Candidate {
    int64_t unit;  // the exit's own unit; a pair also runs unit + 1
    bool ensemble;
    double accuracy;
    int64_t depth() const { return ensemble ? unit + 1 : unit; }
  };
  std::vector<Candidate> candidates;
  for (size_t i = 0; i < head_val_accuracy.size(); ++i) {
    // Pair i - 1 runs as deep as head i: it comes first, so a tie below keeps head i.
    if (i > 0 && i - 1 < pair_val_accuracy.size() && pair_val_accuracy[i - 1])
      candidates.push_back({static_cast<int64_t>(i) - 1, true, *pair_val_accuracy[i - 1]});
    if (head_val_accuracy[i])
      candidates.push_back({static_cast<int64_t>(i), false, *head_val_accuracy[i]});
  }
  TORCH_CHECK(!candidates.empty(), "select_exit: no unit has been trained");
  const Candidate* best = &candidates.front();
  for (const auto& c : candidates)
    if (c.accuracy > best->accuracy) best = &c;
  const Candidate* chosen = nullptr;
  for (const auto& c : candidates) {
    if (c.accuracy < best->accuracy - tolerance - 1e-12) continue;
    if (chosen == nullptr) {
      chosen = &c;
    } else if (c.depth() == chosen->depth() && c.accuracy >= chosen->accuracy) {
      chosen = &c;  // same depth: the more accurate; equal: the later one, the single head
    }
  }
  ExitChoice choice;
  choice.unit = chosen->unit;
  choice.val_accuracy = chosen->accuracy;
  choice.ensemble = chosen->ensemble;
  choice.best_unit = best->unit;
  choice.best_val_accuracy = best->accuracy;
  choice.best_ensemble = best->ensemble;
  return choice;
}

std::vector<int64_t> untrained_units(const std::vector<std::optional<double>>& head_val_accuracy) {
  std::vector<int64_t> untrained;
  for (size_t i = 0; i < head_val_accuracy.size(); ++i)
    if (!head_val_accuracy[i]) untrained.push_back(static_cast<int64_t>(i));
  return untrained;
}

BlockGain record_block_heads(std::vector<std::optional<double>>& head_val_accuracy,
                             int64_t first_unit, const std::vector<double>& block_heads) {
  TORCH_CHECK(first_unit >= 0 && first_unit + static_cast<int64_t>(block_heads.size()) <=
                                     static_cast<int64_t>(head_val_accuracy.size()),
              "record_block_heads: units ", first_unit, "..", first_unit + block_heads.size(),
              " outside ", head_val_accuracy.size());
  BlockGain gain;
  for (int64_t i = 0; i < first_unit; ++i)
    if (head_val_accuracy[i]) gain.best_before = std::max(gain.best_before, *head_val_accuracy[i]);
  gain.best_after = gain.best_before;
  for (size_t j = 0; j < block_heads.size(); ++j) {
    head_val_accuracy[first_unit + j] = block_heads[j];
    gain.best_after = std::max(gain.best_after, block_heads[j]);
  }
  return gain;
}

bool ProgressiveExit::after_block(double best_before, double best_after) {
  without_gain_ = best_after - best_before > tolerance_ ? 0 : without_gain_ + 1;
  return without_gain_ >= patience_;
}

}  // namespace neuroflux
