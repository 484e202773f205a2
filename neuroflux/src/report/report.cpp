#include "neuroflux/report/report.h"

#include <cstdio>

#include "neuroflux/util/atomic_file.h"

namespace neuroflux {

using nlohmann::json;

namespace {

json optional_bytes(const std::optional<int64_t>& v) { return v ? json(*v) : json(nullptr); }

std::optional<int64_t> bytes_from(const json& v) {
  if (v.is_null()) return std::nullopt;
  return v.get<int64_t>();
}

json entry_json(const HistoryEntry& h) {
  json j = {{"block", h.block},           {"epoch", h.epoch},
            {"train_loss", h.train_loss}, {"train_accuracy", h.train_accuracy},
            {"val_accuracy", h.val_accuracy}, {"seconds", h.seconds},
            {"epoch_seconds", h.epoch_seconds}, {"eval_seconds", h.eval_seconds},
            {"lr", h.lr},                 {"batch_size", h.batch_size},
            {"epoch_user_seconds", h.epoch_cpu.user_seconds},
            {"epoch_system_seconds", h.epoch_cpu.system_seconds},
            {"epoch_minor_faults", h.epoch_cpu.minor_faults}};
  if (!h.head_val_accuracy.empty()) j["head_val_accuracy"] = h.head_val_accuracy;
  return j;
}

HistoryEntry entry_from(const json& j) {
  HistoryEntry h;
  h.block = j.at("block");
  h.epoch = j.at("epoch");
  h.train_loss = j.at("train_loss");
  h.train_accuracy = j.value("train_accuracy", 0.0);
  h.val_accuracy = j.at("val_accuracy");
  h.seconds = j.at("seconds");
  h.epoch_seconds = j.value("epoch_seconds", 0.0);
  h.eval_seconds = j.value("eval_seconds", 0.0);
  h.lr = j.value("lr", 0.0);
  h.batch_size = j.value("batch_size", int64_t{0});
  h.epoch_cpu.user_seconds = j.value("epoch_user_seconds", 0.0);
  h.epoch_cpu.system_seconds = j.value("epoch_system_seconds", 0.0);
  h.epoch_cpu.minor_faults = j.value("epoch_minor_faults", int64_t{0});
  if (j.contains("head_val_accuracy"))
    h.head_val_accuracy = j["head_val_accuracy"].get<std::vector<double>>();
  return h;
}

}  // namespace

json blocks_to_json(const std::vector<BlockReport>& blocks) {
  json out = json::array();
  for (const auto& b : blocks) {
    json j = {{"units", {b.first_unit, b.last_unit}},
              {"batch_size", b.batch_size},
              {"epochs", b.epochs},
              {"predicted_peak_bytes", optional_bytes(b.predicted_peak_bytes)},
              {"peak_memory_bytes", b.peak_memory_bytes},
              {"seconds", b.seconds},
              {"cache_bytes", b.cache_bytes}};
    j.update(b.extra);
    out.push_back(j);
  }
  return out;
}

std::vector<BlockReport> blocks_from_json(const json& blocks) {
  static const char* known_block_keys[] = {"units",      "batch_size",        "epochs",
                                           "predicted_peak_bytes", "peak_memory_bytes",
                                           "seconds",    "cache_bytes"};
  std::vector<BlockReport> out;
  for (const auto& b : blocks) {
    BlockReport block;
    block.first_unit = b.at("units").at(0);
    block.last_unit = b.at("units").at(1);
    block.batch_size = b.at("batch_size");
    block.epochs = b.at("epochs");
    block.predicted_peak_bytes = bytes_from(b.at("predicted_peak_bytes"));
    block.peak_memory_bytes = b.at("peak_memory_bytes");
    block.seconds = b.at("seconds");
    block.cache_bytes = b.at("cache_bytes");
    for (auto it = b.begin(); it != b.end(); ++it) {
      bool known = false;
      for (const char* k : known_block_keys) known = known || it.key() == k;
      if (!known) block.extra[it.key()] = it.value();
    }
    out.push_back(block);
  }
  return out;
}

json phase_peaks_to_json(const PhasePeaks& peaks) {
  json j = {{"phase_peaks", json::object()}};
  for (const auto& [name, bytes] : peaks.phases()) j["phase_peaks"][name] = bytes;
  if (!peaks.probes().empty()) {
    j["unbudgeted_probe_peaks"] = json::object();
    for (const auto& [name, bytes] : peaks.probes()) j["unbudgeted_probe_peaks"][name] = bytes;
  }
  return j;
}

PhasePeaks phase_peaks_from_json(const json& j) {
  PhasePeaks peaks;
  if (j.contains("phase_peaks"))
    for (auto it = j["phase_peaks"].begin(); it != j["phase_peaks"].end(); ++it)
      peaks.record(it.key(), it.value().get<int64_t>());
  if (j.contains("unbudgeted_probe_peaks"))
    for (auto it = j["unbudgeted_probe_peaks"].begin(); it != j["unbudgeted_probe_peaks"].end();
         ++it)
      peaks.record_probe(it.key(), it.value().get<int64_t>());
  return peaks;
}

json Report::to_json() const {
  const json blocks_json = blocks_to_json(blocks);
  const json history_json = history_to_json(history);
  json j = {{"neuroflux_version", NEUROFLUX_VERSION},
            {"method", method},
            {"model", model},
            {"dataset", dataset},
            {"device", device},
            {"budget_bytes", optional_bytes(budget_bytes)},
            {"peak_memory_bytes", peak_memory_bytes},
            {"train_seconds", train_seconds},
            {"eval_seconds", eval_seconds},
            {"epochs", epochs},
            {"full_model_params", full_model_params},
            {"final",
             {{"val_accuracy", final.val_accuracy},
              {"test_accuracy", final.test_accuracy},
              {"params", final.params},
              {"exit_unit", final.exit_unit}}},
            {"blocks", blocks_json},
            {"history", history_json},
            {"config", config}};
  j.update(phase_peaks_to_json(phase_peaks));
  j.update(extra);
  return j;
}

Report Report::from_json(const json& j) {
  Report r;
  r.method = j.at("method");
  r.model = j.at("model");
  r.dataset = j.at("dataset");
  r.device = j.at("device");
  r.budget_bytes = bytes_from(j.at("budget_bytes"));
  r.peak_memory_bytes = j.at("peak_memory_bytes");
  r.train_seconds = j.at("train_seconds");
  r.eval_seconds = j.value("eval_seconds", 0.0);
  r.epochs = j.at("epochs");
  r.full_model_params = j.at("full_model_params");
  const json& f = j.at("final");
  r.final = {f.at("val_accuracy"), f.at("test_accuracy"), f.at("params"), f.at("exit_unit")};
  r.blocks = blocks_from_json(j.at("blocks"));
  r.history = history_from_json(j.at("history"));
  r.config = j.value("config", json::object());
  r.phase_peaks = phase_peaks_from_json(j);
  static const char* known_keys[] = {
      "neuroflux_version", "method", "model", "dataset", "device", "budget_bytes",
      "peak_memory_bytes", "train_seconds", "eval_seconds", "epochs", "full_model_params",
      "final", "blocks", "history", "config", "phase_peaks", "unbudgeted_probe_peaks"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = false;
    for (const char* k : known_keys) known = known || it.key() == k;
    if (!known) r.extra[it.key()] = it.value();
  }
  return r;
}

json history_to_json(const std::vector<HistoryEntry>& history) {
  json out = json::array();
  for (const auto& h : history) out.push_back(entry_json(h));
  return out;
}

std::vector<HistoryEntry> history_from_json(const json& history) {
  std::vector<HistoryEntry> out;
  for (const auto& h : history) out.push_back(entry_from(h));
  return out;
}

std::string history_csv(const std::vector<HistoryEntry>& history) {
  std::string csv =
      "block,epoch,train_loss,train_accuracy,val_accuracy,seconds,epoch_seconds,eval_seconds,lr,"
      "batch_size\n";
  char line[256];
  for (const auto& h : history) {
    std::snprintf(line, sizeof line, "%lld,%lld,%.6f,%.6f,%.6f,%.3f,%.3f,%.3f,%.6g,%lld\n",
                  static_cast<long long>(h.block), static_cast<long long>(h.epoch), h.train_loss,
                  h.train_accuracy, h.val_accuracy, h.seconds, h.epoch_seconds, h.eval_seconds,
                  h.lr, static_cast<long long>(h.batch_size));
    csv += line;
  }
  return csv;
}

void Report::write(const std::string& out_dir) const {
  write_file_atomic(out_dir + "/report.json", to_json().dump(2) + "\n");
  write_file_atomic(out_dir + "/history.csv", history_csv(history));
}

}  // namespace neuroflux
