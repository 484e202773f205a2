#include "train/neuroflux_run_state.h"

#include "train/training_loop.h"

namespace neuroflux {

using nlohmann::json;

json NeuroFluxRunState::to_json() const {
  json heads = json::array();
  for (const auto& h : head_accuracy) heads.push_back(h ? json(*h) : json(nullptr));
  // "peak" too, for a reader of the older format.
  json j = {{"blocks_done", blocks_done}, {"stopped_early", stopped_early},
            {"blocks_without_gain", blocks_without_gain},
            {"blocks", blocks_to_json(blocks)}, {"history", history_to_json(history)},
            {"head_accuracy", heads}, {"train_seconds", train_seconds},
            {"eval_seconds", eval_seconds}, {"cache_seconds", cache_seconds},
            {"peak", phase_peaks.max()}};
  j.update(phase_peaks_to_json(phase_peaks));
  return j;
}

NeuroFluxRunState NeuroFluxRunState::from_json(const json& j) {
  NeuroFluxRunState s;
  s.blocks_done = j.at("blocks_done");
  s.stopped_early = j.at("stopped_early");
  s.blocks_without_gain = j.value("blocks_without_gain", 0);
  s.blocks = blocks_from_json(j.at("blocks"));
  s.history = history_from_json(j.at("history"));
  for (const auto& h : j.at("head_accuracy"))
    s.head_accuracy.push_back(h.is_null() ? std::nullopt : std::optional<double>(h.get<double>()));
  s.train_seconds = j.at("train_seconds");
  s.eval_seconds = j.at("eval_seconds");
  s.cache_seconds = j.at("cache_seconds");
  s.phase_peaks = checkpoint_phase_peaks(j, "peak");
  return s;
}

NeuroFluxCheckpoint::NeuroFluxCheckpoint(const TrainingSetup& setup)
    : config_(setup.config),
      checkpointer_(setup.out_dir.empty() ? "" : setup.out_dir + "/checkpoint"),
      saved_(resumable_checkpoint(checkpointer_, setup, [](const json& state) {
        return state.at("run").at("blocks_done").get<int64_t>();
      })) {}

// A field of the saved state missing or of another type is a DataError naming state.json.
Plan NeuroFluxCheckpoint::plan() const {
  return read_checkpoint_state(checkpointer_.dir(), saved_->at("state"),
                               [](const json& state) { return Plan::from_json(state.at("plan")); });
}

double NeuroFluxCheckpoint::profile_seconds() const {
  return read_checkpoint_state(checkpointer_.dir(), saved_->at("state"), [](const json& state) {
    return state.value("profile_seconds", 0.0);
  });
}

NeuroFluxRunState NeuroFluxCheckpoint::restore(LocalModel& model) const {
  checkpointer_.load(*model, nullptr);
  return read_checkpoint_state(checkpointer_.dir(), saved_->at("state"), [](const json& state) {
    return NeuroFluxRunState::from_json(state.at("run"));
  });
}

void NeuroFluxCheckpoint::save(LocalModel& model, const NeuroFluxRunState& state,
                               const Plan& plan, double profile_seconds) {
  if (checkpointer_.dir().empty()) return;
  json s = {{"run", state.to_json()}, {"plan", plan.to_json()},
            {"profile_seconds", profile_seconds}, {"config", resumable_config(config_)}};
  checkpointer_.save(*model, nullptr, s, state.blocks_done);
}

}  // namespace neuroflux
