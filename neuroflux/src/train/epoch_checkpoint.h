// The checkpoint of a trainer that saves after every epoch (backprop, local learning): the loop
// state with the batch size and the config, so --resume continues after the last saved epoch,
// and on every rank of a data-parallel job from the same one.
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <nlohmann/json.hpp>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

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
  /// `read(saved_state())`: a field it reads that is missing or of another type is a DataError
  /// naming the checkpoint's state.json.
  template <typename Read>
  auto read_saved_state(Read&& read) const {
    return read_checkpoint_state(dir(), saved_state(), std::forward<Read>(read));
  }
  /// Where the checkpoint's files are, for a trainer's own files beside them.
  const std::string& dir() const { return checkpointer_.dir(); }

  /// Loads the saved weights into `module` (and `optimizer` when given); the loop state.
  LoopState load(torch::nn::Module& module, torch::optim::Optimizer* optimizer) const;
  /// Reads the checkpoint's file `name` (one of save()'s `files`), verified against its recorded
  /// checksum (Checkpointer::read_archive).
  void read_archive(
      const std::string& name,
      const std::function<void(torch::serialize::InputArchive& archive)>& read) const {
    checkpointer_.read_archive(name, read);
  }
  /// After `state.epochs_done` epochs at `batch_size`: `module` (and `optimizer`), and the state
  /// with `extra`'s fields and the config a resume must match. `files`: archives of the caller's
  /// written into dir() for this checkpoint, checksummed with it (Checkpointer::save).
  void save(const torch::nn::Module& module, const torch::optim::Optimizer* optimizer,
            const LoopState& state, int64_t batch_size,
            const nlohmann::json& extra = nlohmann::json::object(),
            const std::vector<std::string>& files = {});

 private:
  const Config& config_;
  Checkpointer checkpointer_;
  std::optional<nlohmann::json> saved_;
};

}  // namespace neuroflux
