// report.json, the contract every script, plot and check reads (README.md, "report.json").
// Fields may be added; none are renamed.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "neuroflux/util/cpu_usage.h"
#include "neuroflux/util/phase_peaks.h"

namespace neuroflux {

struct HistoryEntry {
  int64_t block = 0;
  int64_t epoch = 0;             ///< 1-based within the block
  double train_loss = 0;
  double train_accuracy = 0;
  double val_accuracy = 0;       ///< of the block's best head (the model for backprop)
  double seconds = 0;            ///< cumulative training seconds of the run (evaluation excluded)
  double epoch_seconds = 0;      ///< training seconds of this epoch
  double eval_seconds = 0;       ///< seconds this evaluation took
  CpuUsage epoch_cpu;            ///< user / kernel seconds and page faults of the epoch's training
  double lr = 0;
  int64_t batch_size = 0;
  std::vector<double> head_val_accuracy;  ///< local / neuroflux: per unit of the block
};

struct BlockReport {
  int64_t first_unit = 0, last_unit = 0;  ///< inclusive, written as "units": [first, last]
  int64_t batch_size = 0;
  int64_t epochs = 0;
  std::optional<int64_t> predicted_peak_bytes;
  int64_t peak_memory_bytes = 0;
  double seconds = 0;
  int64_t cache_bytes = 0;
  nlohmann::json extra = nlohmann::json::object();  ///< method-specific fields, merged in
};

struct FinalReport {
  double val_accuracy = 0;
  double test_accuracy = 0;
  int64_t params = 0;        ///< the exported (early-exit) model
  int64_t exit_unit = 0;
};

struct Report {
  std::string method, model, dataset, device;
  std::optional<int64_t> budget_bytes;
  int64_t peak_memory_bytes = 0;  ///< phase_peaks.max(): every phase ran under the budget
  /// Written as "phase_peaks" (name -> bytes) and, when any ran, "unbudgeted_probe_peaks".
  PhasePeaks phase_peaks;
  double train_seconds = 0;
  double eval_seconds = 0;
  int64_t epochs = 0;
  int64_t full_model_params = 0;
  FinalReport final;
  std::vector<BlockReport> blocks;
  std::vector<HistoryEntry> history;
  nlohmann::json config;                           ///< the resolved config that ran
  nlohmann::json extra = nlohmann::json::object();  ///< further top-level fields

  nlohmann::json to_json() const;
  static Report from_json(const nlohmann::json& json);
  /// OUT/report.json and OUT/history.csv, both written atomically.
  void write(const std::string& out_dir) const;
};

nlohmann::json blocks_to_json(const std::vector<BlockReport>& blocks);
std::vector<BlockReport> blocks_from_json(const nlohmann::json& blocks);
std::string history_csv(const std::vector<HistoryEntry>& history);
nlohmann::json phase_peaks_to_json(const PhasePeaks& peaks);
/// Reads "phase_peaks" and "unbudgeted_probe_peaks" of `json` where they are (a report, a
/// checkpoint's state); absent, nothing is recorded.
PhasePeaks phase_peaks_from_json(const nlohmann::json& json);
nlohmann::json history_to_json(const std::vector<HistoryEntry>& history);
std::vector<HistoryEntry> history_from_json(const nlohmann::json& history);

}  // namespace neuroflux
