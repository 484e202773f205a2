// The checkpoint of a trainer that saves after every epoch (backprop, local learning): the loop
// state with the batch size and the config, so --resume continues after the last saved epoch,
// and on every rank of a data-parallel job from the same one.
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "neuroflux/config/config.h"
#include "neuroflux/train/checkpoint.h"
#include "neuroflux/train/training_setup.h"
#include "train/training_loop.h"

namespace neuroflux {

class EpochCheckpoint {
 public:
  /// OUT/checkpoint (none when out_dir is ""). Under --resume its newest state must come from
  /// the same config (ConfigError) and, data parallel, from the same epoch as every other rank's:
  /// a collective, so every rank constructs one.
  explicit EpochCheckpoint(const TrainingSetup& setup);

  /// Whether save() has somewhere to go.
  bool enabled() const { return !checkpointer_.dir().empty(); }
  /// Whether the run continues from a saved epoch.
  bool resuming() const { return saved_.has_value(); }
  /// The state the run resumes from: batch_size, save()'s `extra`, ...; resuming() only.
  const nlohmann::json& saved_state() const { return saved_->at("state"); }
  /// Where the checkpoint's files are, for a trainer's own files beside them.
  const std::string& dir() const { return checkpointer_.dir(); }

  /// Loads the saved weights into `module` (and `optimizer` when given); the loop state.
  LoopState load(torch::nn::Module& module, torch::optim::Optimizer* optimizer) const;
  /// After `state.epochs_done` epochs at `batch_size`: `module` (and `optimizer`), and the state
  /// with `extra`'s fields and the config a resume must match.
  void save(const torch::nn::Module& module, const torch::optim::Optimizer* optimizer,
            const LoopState& state, int64_t batch_size,
            const nlohmann::json& extra = nlohmann::json::object());

 private:
  const Config& config_;
  Checkpointer checkpointer_;
  std::optional<nlohmann::json> saved_;
};

}  // namespace neuroflux
