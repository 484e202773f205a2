// What a NeuroFlux run has done so far (blocks, history, head accuracies, times), and the
// checkpoint that carries it across a kill: after every block, the weights, this state and the
// plan go to OUT/checkpoint, and a resumed run goes on with the block after the last one saved.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "neuroflux/config/config.h"
#include "neuroflux/local/local_model.h"
#include "neuroflux/plan/plan.h"
#include "neuroflux/report/report.h"
#include "neuroflux/train/checkpoint.h"
#include "neuroflux/train/training_setup.h"

namespace neuroflux {

struct NeuroFluxRunState {
  int64_t blocks_done = 0;
  bool stopped_early = false;
  int64_t blocks_without_gain = 0;  ///< consecutive blocks that did not raise the best head
  std::vector<BlockReport> blocks;
  std::vector<HistoryEntry> history;
  std::vector<std::optional<double>> head_accuracy;  ///< per unit; nullopt until trained
  /// neuroflux.exit_ensemble: per unit, its head's validation log-probabilities at its block's
  /// best epoch (empty until trained). Not checkpointed: after --resume the units trained before
  /// the kill are no ensemble candidates (their pairs are reported as null).
  std::vector<std::vector<float>> head_val_log_probs;
  double train_seconds = 0, eval_seconds = 0, cache_seconds = 0;
  /// Every phase's peak so far (profiling, each block's training, validation, caching,
  /// checkpoints; those before a resume included): the run's peak is their maximum.
  PhasePeaks phase_peaks;

  nlohmann::json to_json() const;
  static NeuroFluxRunState from_json(const nlohmann::json& j);
};

/// A run's checkpoint: what a resumed run reads (its plan, state and weights) and what every
/// finished block writes. Without OUT there is none: nothing is read or written.
class NeuroFluxCheckpoint {
 public:
  /// Under --resume, reads the newest checkpoint under OUT/checkpoint (resumable_checkpoint:
  /// checked against the config, the same one on every rank).
  explicit NeuroFluxCheckpoint(const TrainingSetup& setup);

  bool resuming() const { return saved_.has_value(); }
  /// The saved run's plan and profiling time; only when resuming().
  Plan plan() const;
  double profile_seconds() const;
  /// Loads the saved weights into `model` and returns the saved state; only when resuming().
  NeuroFluxRunState restore(LocalModel& model) const;

  /// After a block: the model's weights and everything needed to go on from here.
  void save(LocalModel& model, const NeuroFluxRunState& state, const Plan& plan,
            double profile_seconds);

 private:
  const Config& config_;
  Checkpointer checkpointer_;
  std::optional<nlohmann::json> saved_;
};

}  // namespace neuroflux
