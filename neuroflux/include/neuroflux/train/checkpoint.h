// Checkpoints a killed run can resume from. Weights and optimizer state go to files named by a
// step number; state.json, written last and atomically, names the files of the newest complete
// checkpoint, so a kill at any moment leaves either the old checkpoint or the new one.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <optional>
#include <string>

namespace neuroflux {

class Checkpointer {
 public:
  /// Files live in `dir` (created on save). Temporaries that a killed run left there are removed.
  explicit Checkpointer(std::string dir);

  /// Saves `module` (and `optimizer` when given) plus `state`, tagged `step`; removes the files
  /// of the previous checkpoint afterwards.
  void save(const torch::nn::Module& module, const torch::optim::Optimizer* optimizer,
            const nlohmann::json& state, int64_t step);

  /// The newest checkpoint's state, loading weights into `module` (and `optimizer`); nullopt when
  /// there is none. A checkpoint whose files are missing or unreadable is a DataError.
  std::optional<nlohmann::json> load(torch::nn::Module& module,
                                     torch::optim::Optimizer* optimizer) const;

  /// The newest state without loading weights.
  std::optional<nlohmann::json> peek() const;

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

}  // namespace neuroflux
