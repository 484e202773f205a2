#include "neuroflux/plan/plan.h"

#include <nlohmann/json.hpp>

#include <cstdio>

#include "neuroflux/util/size_format.h"

namespace neuroflux {

using nlohmann::json;

json Plan::to_json() const {
  json heads_json = json::array();
  for (const auto& h : heads) heads_json.push_back(h.to_json());
  json blocks_json = json::array();
  for (const auto& b : blocks)
    blocks_json.push_back({{"units", {b.first_unit, b.last_unit}},
                           {"batch_size", b.batch_size},
                           {"epochs", b.epochs},
                           {"lr", b.lr},
                           {"cache_batch_size", b.cache_batch_size},
                           {"predicted_peak_bytes", b.predicted_peak_bytes},
                           {"predicted_seconds", b.predicted_seconds},
                           {"unit_modes", b.unit_modes}});
  return {{"budget_bytes", budget_bytes ? json(*budget_bytes) : json(nullptr)},
          {"smallest_feasible_budget", smallest_feasible_budget},
          {"predicted_seconds", predicted_seconds},
          {"module_sizes", module_sizes},
          {"heads", heads_json},
          {"blocks", blocks_json}};
}

Plan Plan::from_json(const json& j) {
  Plan p;
  if (!j.at("budget_bytes").is_null()) p.budget_bytes = j.at("budget_bytes").get<int64_t>();
  p.smallest_feasible_budget = j.at("smallest_feasible_budget");
  p.predicted_seconds = j.at("predicted_seconds");
  p.module_sizes = j.value("module_sizes", std::vector<int64_t>{});
  for (const auto& h : j.at("heads")) p.heads.push_back(AuxHeadSpec::from_json(h));
  for (const auto& b : j.at("blocks")) {
    PlannedBlock block;
    block.first_unit = b.at("units").at(0);
    block.last_unit = b.at("units").at(1);
    block.batch_size = b.at("batch_size");
    block.epochs = b.at("epochs");
    block.lr = b.at("lr");
    block.cache_batch_size = b.at("cache_batch_size");
    block.predicted_peak_bytes = b.at("predicted_peak_bytes");
    block.predicted_seconds = b.at("predicted_seconds");
    block.unit_modes = b.value("unit_modes", std::vector<std::string>{});
    p.blocks.push_back(block);
  }
  return p;
}

std::string Plan::table() const {
  std::string out = "budget: " + (budget_bytes ? format_size(*budget_bytes, true) : "none") +
                    "   smallest feasible: " + format_size(smallest_feasible_budget, true) + "\n";
  out += "| block | units | batch | epochs | lr | cache batch | predicted peak | predicted s | "
         "unit modes |\n|---|---|---|---|---|---|---|---|---|\n";
  char line[512];
  for (size_t i = 0; i < blocks.size(); ++i) {
    const auto& b = blocks[i];
    std::string modes;
    for (const auto& m : b.unit_modes) modes += (modes.empty() ? "" : " ") + m;
    if (modes.empty()) modes = "plain";
    std::snprintf(line, sizeof line, "| %zu | %lld-%lld | %lld | %lld | %.4g | %lld | %s | %.1f | %s |\n",
                  i, static_cast<long long>(b.first_unit), static_cast<long long>(b.last_unit),
                  static_cast<long long>(b.batch_size), static_cast<long long>(b.epochs), b.lr,
                  static_cast<long long>(b.cache_batch_size),
                  format_size(b.predicted_peak_bytes).c_str(), b.predicted_seconds, modes.c_str());
    out += line;
  }
  if (!module_sizes.empty()) {
    out += "modules (built units each):";
    for (int64_t size : module_sizes) out += " " + std::to_string(size);
    out += "\n";
  }
  out += "heads (unit: pool, width):";
  for (size_t i = 0; i < heads.size(); ++i)
    out += " " + std::to_string(i) + ":" +
           (heads[i].classifier ? std::string("classifier")
                                : std::to_string(heads[i].pool) + "," + std::to_string(heads[i].width));
  out += "\n";
  char total[64];
  std::snprintf(total, sizeof total, "predicted training time: %.1f s\n", predicted_seconds);
  return out + total;
}

}  // namespace neuroflux
