// Pieces every trainer's epoch loop shares: iterating shuffled (augmented) batches with progress,
// the resumable loop state and the report's common fields.
#pragma once

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "neuroflux/config/config.h"
#include "neuroflux/data/data_splits.h"
#include "neuroflux/models/unit_chain.h"
#include "neuroflux/report/report.h"
#include "neuroflux/train/checkpoint.h"
#include "neuroflux/train/training_setup.h"
#include "neuroflux/data/block_input.h"
#include "neuroflux/util/cpu_usage.h"
#include "neuroflux/util/errors.h"

namespace neuroflux {

struct StepResult {
  at::Tensor loss;      ///< mean loss of the batch (0-dim)
  at::Tensor correct;   ///< number of correct predictions (0-dim)
};

struct EpochStats {
  double loss = 0, accuracy = 0, seconds = 0;
  int64_t samples = 0;
  CpuUsage cpu;
};

/// One training epoch of `input` (shuffled by (seed, epoch), augmented for the data set when the
/// config says so) in batches of `batch_size`, with progress; `step` trains on each batch.
EpochStats run_epoch(BlockInput& input, int64_t batch_size, int64_t epoch,
                     const std::string& label,
                     const std::function<StepResult(const at::Tensor&, const at::Tensor&)>& step);

/// The history entry of 0-based `epoch` as far as its training pass goes: epoch number, loss,
/// accuracy, seconds, CPU usage, learning rate and batch size. Validation is the caller's.
HistoryEntry epoch_history_entry(int64_t epoch, const EpochStats& stats, double lr,
                                 int64_t batch_size);

/// What a checkpoint carries besides weights.
struct LoopState {
  int64_t epochs_done = 0;
  double train_seconds = 0, eval_seconds = 0;
  PhasePeaks phase_peaks;  ///< of every phase so far, those before a resume included
  std::vector<HistoryEntry> history;

  nlohmann::json to_json() const;
  static LoopState from_json(const nlohmann::json& state);
};

/// The phase peaks a checkpoint's `state` carries. A checkpoint written before they were kept has
/// only the run's peak so far (under `old_peak_key`): that comes back as the phase
/// "before_resume", so a resumed run's peak still covers the epochs before the kill.
PhasePeaks checkpoint_phase_peaks(const nlohmann::json& state, const char* old_peak_key);

/// The config fields a resumed run must share with the run that wrote the checkpoint.
nlohmann::json resumable_config(const Config& config);
/// Under --resume (setup.resume), the newest checkpoint `checkpointer` holds (its "state" and
/// files; nullopt when there is none or no out_dir). A ConfigError when it was written under a
/// different configuration. Data parallel, every rank must hold the one at the same `step` (read
/// off the state): a collective, so every rank calls it.
std::optional<nlohmann::json> resumable_checkpoint(
    const Checkpointer& checkpointer, const TrainingSetup& setup,
    const std::function<int64_t(const nlohmann::json& state)>& step);

/// `read(state)`, reading fields of the state of the checkpoint in `dir`: a field that is missing
/// or of another type (a JSON exception) is a DataError naming dir/state.json, as a checkpoint
/// that cannot be used.
template <typename Read>
auto read_checkpoint_state(const std::string& dir, const nlohmann::json& state, Read&& read) {
  try {
    return read(state);
  } catch (const nlohmann::json::exception& e) {
    throw DataError(dir + "/state.json: corrupt checkpoint state (" + e.what() + ")");
  }
}

/// method, model, dataset, device, budget, epochs, params and config filled in.
Report make_report_skeleton(const Config& config, UnitChainImpl& model,
                            const data::DataSplits& data, const c10::Device& device);

/// The single block of a whole-network method (backprop, local): units 0..units-1.
BlockReport whole_network_block(int64_t units, int64_t batch_size, int64_t epochs,
                                const LoopState& state);

}  // namespace neuroflux
