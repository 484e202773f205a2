#include "train/epoch_checkpoint.h"

namespace neuroflux {

using nlohmann::json;

EpochCheckpoint::EpochCheckpoint(const TrainingSetup& setup)
    : config_(setup.config),
      checkpointer_(setup.out_dir.empty() ? "" : setup.out_dir + "/checkpoint"),
      saved_(resumable_checkpoint(checkpointer_, setup, [](const json& state) {
        return state.at("epochs_done").get<int64_t>();
      })) {}

LoopState EpochCheckpoint::load(torch::nn::Module& module,
                                torch::optim::Optimizer* optimizer) const {
  const std::optional<json> state = checkpointer_.load(module, optimizer);
  if (!state) throw DataError(dir() + "/state.json: the checkpoint is gone");
  return read_checkpoint_state(dir(), *state, LoopState::from_json);
}

void EpochCheckpoint::save(const torch::nn::Module& module,
                           const torch::optim::Optimizer* optimizer, const LoopState& state,
                           int64_t batch_size, const json& extra,
                           const std::vector<std::string>& files) {
  json s = state.to_json();
  s["batch_size"] = batch_size;
  s["config"] = resumable_config(config_);
  s.update(extra);
  checkpointer_.save(module, optimizer, s, state.epochs_done, files);
}

}  // namespace neuroflux
