// Trains one block: its units with their heads, each unit's input detached, one optimizer per
// unit, on batches from a BlockInput. Stops when the block's best head has not improved by more
// than block_min_delta for block_patience evaluations (at most `epochs`), and leaves the block
// with the weights of its best evaluation.
#pragma once

#include <c10/core/Device.h>

#include <memory>
#include <vector>

#include "neuroflux/config/config.h"
#include "neuroflux/local/local_model.h"
#include "neuroflux/plan/plan.h"
#include "neuroflux/report/report.h"
#include "neuroflux/data/block_input.h"

namespace neuroflux {

class Communicator;

struct BlockOutcome {
  int64_t epochs_run = 0;
  int64_t best_epoch = 0;                       ///< 1-based
  std::vector<double> head_val_accuracy;        ///< per unit of the block, at the best epoch
  /// neuroflux.exit_ensemble: per unit of the block, its head's validation log-probabilities at
  /// the best epoch ([samples, classes] row-major, host memory), for ensemble candidates.
  std::vector<std::vector<float>> head_val_log_probs;
  std::vector<HistoryEntry> history;
  double train_seconds = 0;                     ///< evaluation excluded
  double eval_seconds = 0;
};

struct BlockTrainingOptions {
  int64_t block_index = 0;
  int64_t first_unit = 0, last_unit = 0;
  int64_t batch_size = 1;
  /// Per unit of the block: how its forward runs in training (the plan's unit_modes); empty =
  /// all plain.
  std::vector<std::string> unit_modes;
  int64_t eval_batch_size = 1;
  int64_t max_epochs = 1;
  double lr = 0.05;
  int64_t patience = 2;          ///< evaluations without improvement before stopping; 0 = never
  double min_delta = 0.0;
  double seconds_before = 0;     ///< training seconds of the run so far (history is cumulative)
  /// Data parallel: gradients averaged over the ranks after each unit's backward, batch-norm
  /// statistics averaged each epoch, and rank 0's evaluation decides when to stop.
  std::shared_ptr<Communicator> comm;
  int64_t bucket_bytes = 1 << 20;
  /// Where the phases "train" (each epoch, and setting up and restoring the best weights) and
  /// "validate" (each epoch's evaluation) are recorded, measured on `device`'s meter under
  /// memory.budget; null records them nowhere (they still run under the budget).
  PhasePeaks* phases = nullptr;
  c10::Device device = c10::kCPU;
  bool collect_log_probs = false;  ///< fill BlockOutcome::head_val_log_probs
};

/// `model`'s block units must be on the device `input` delivers batches to.
BlockOutcome train_block(LocalModel& model, BlockInput& input, const BlockTrainingOptions& options,
                         const Config& config);

/// Validation accuracy of every head of units [first, last] on `split` of `input`; with
/// `log_probs`, also every head's log-softmax outputs in order (host memory, outside the budget).
std::vector<double> evaluate_block_heads(LocalModel& model, BlockInput& input, Split split,
                                         int64_t first, int64_t last, int64_t batch_size,
                                         std::vector<std::vector<float>>* log_probs = nullptr);

}  // namespace neuroflux
