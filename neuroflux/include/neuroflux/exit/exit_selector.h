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
  /// The exit is an ensemble: unit's head averaged with unit + 1's (exit/exit_ensemble.h), and
  /// val_accuracy (best_val_accuracy, when best_ensemble) is the pair's.
  bool ensemble = false;
  bool best_ensemble = false;
};

/// `head_val_accuracy[i]` is unit i's head accuracy, nullopt for units never trained. The
/// shallowest trained unit with accuracy >= best - tolerance wins.
ExitChoice select_exit(const std::vector<std::optional<double>>& head_val_accuracy,
                       double tolerance);

/// With exit ensembles as candidates (neuroflux.exit_ensemble): `pair_val_accuracy[i]` is the
/// accuracy of unit i's head averaged with unit i + 1's, nullopt where not measured. A
/// candidate's depth is the deepest unit it runs (pair i: unit i + 1). The best is taken over
/// all candidates; the shallowest within `tolerance` of it wins, and at equal depth the more
/// accurate (pair i against head i + 1; a tie keeps the single head, which is smaller).
ExitChoice select_exit(const std::vector<std::optional<double>>& head_val_accuracy,
                       const std::vector<std::optional<double>>& pair_val_accuracy,
                       double tolerance);

/// Units no head accuracy was recorded for: never trained (progressive exit skipped them).
std::vector<int64_t> untrained_units(const std::vector<std::optional<double>>& head_val_accuracy);

/// The best head accuracy before a block and with it.
struct BlockGain {
  double best_before = -1;  ///< over the units before the block; negative when none was trained
  double best_after = -1;
};

/// Records the head accuracies of a block's units (`first_unit` onwards) into
/// `head_val_accuracy` and says how much the block raised the best head.
BlockGain record_block_heads(std::vector<std::optional<double>>& head_val_accuracy,
                             int64_t first_unit, const std::vector<double>& block_heads);

/// Progressive exit: after each block, whether the blocks still to come are worth training.
/// A block "gains" when it raises the best head accuracy so far by more than `tolerance`; the
/// rest are skipped after `patience` blocks in a row that did not.
class ProgressiveExit {
 public:
  ProgressiveExit(double tolerance, int64_t patience, int64_t blocks_without_gain = 0)
      : tolerance_(tolerance), patience_(patience), without_gain_(blocks_without_gain) {}

  /// Records a block that moved the best head accuracy from `best_before` (negative when no
  /// head was trained before it) to `best_after`; true when the remaining blocks should stop.
  bool after_block(double best_before, double best_after);
  /// Consecutive blocks without gain so far (a checkpoint keeps it to resume the count).
  int64_t blocks_without_gain() const { return without_gain_; }

 private:
  double tolerance_;
  int64_t patience_;
  int64_t without_gain_;
};

}  // namespace neuroflux
