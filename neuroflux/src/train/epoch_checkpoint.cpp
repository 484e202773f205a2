#include "train/epoch_checkpoint.h"

#include "neuroflux/distributed/data_parallel.h"

namespace neuroflux {

using nlohmann::json;

EpochCheckpoint::EpochCheckpoint(const TrainingSetup& setup)
    : config_(setup.config),
      checkpointer_(setup.out_dir.empty() ? "" : setup.out_dir + "/checkpoint"),
      saved_(setup.resume && !setup.out_dir.empty() ? checkpointer_.peek() : std::nullopt) {
  if (saved_) check_resumable(saved_state(), config_, dir());
  if (setup.comm && setup.resume)
    check_same_checkpoint(*setup.comm, saved_ ? saved_state().at("epochs_done").get<int64_t>() : -1,
                          dir());
}

LoopState EpochCheckpoint::load(torch::nn::Module& module,
                                torch::optim::Optimizer* optimizer) const {
  return LoopState::from_json(*checkpointer_.load(module, optimizer));
}

void EpochCheckpoint::save(const torch::nn::Module& module,
                           const torch::optim::Optimizer* optimizer, const LoopState& state,
                           int64_t batch_size, const json& extra) {
  json s = state.to_json();
  s["batch_size"] = batch_size;
  s["config"] = resumable_config(config_);
  s.update(extra);
  checkpointer_.save(module, optimizer, s, state.epochs_done);
}

}  // namespace neuroflux
