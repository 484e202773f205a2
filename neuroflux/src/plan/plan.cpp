#include "neuroflux/plan/plan.h"

#include <nlohmann/json.hpp>

#include <cmath>
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
                           {"unit_modes", b.unit_modes},
                           {"threads", b.threads}});
  return {{"budget_bytes", budget_bytes ? json(*budget_bytes) : json(nullptr)},
          {"smallest_feasible_budget", smallest_feasible_budget},
          {"predicted_seconds", predicted_seconds},
          {"module_sizes", module_sizes},
          {"heads", heads_json},
          {"blocks", blocks_json}};
}

namespace {

// A plan read back may come from a file edited by hand (neuroflux.plan). Its problems are thrown
// as nlohmann::json exceptions, like the parser's own, which the trainer reports as a ConfigError
// naming the file; a plan that loads is one the trainer can follow.
[[noreturn]] void refuse_plan(const std::string& what) {
  throw json::other_error::create(501, "plan: " + what, nullptr);
}

// An integer field. json's get<int64_t> would also take a float, and casting one past int64's
// range (1e300) is undefined behaviour.
int64_t integer(const json& j, const char* key, int64_t min) {
  const json& v = j.at(key);
  if (!v.is_number_integer() || v.get<int64_t>() < min)
    refuse_plan(std::string(key) + " must be an integer >= " + std::to_string(min) + ", got " +
           v.dump(-1, ' ', false, json::error_handler_t::replace));
  return v.get<int64_t>();
}

// Known names only. Their count may differ from the block's units: the block trainer runs the
// units it has no mode for plain and ignores extra modes (tests/scripts/resume_after_kill.sh
// copies one block's modes into blocks of one unit).
void check_modes(const PlannedBlock& b) {
  for (const auto& m : b.unit_modes)
    if (m != "plain" && m != "recompute" && m != "row_centric" && m != "im2col")
      refuse_plan("unknown unit mode \"" + m + "\" (plain, recompute, row_centric, im2col)");
}

}  // namespace

Plan Plan::from_json(const json& j) {
  Plan p;
  if (!j.at("budget_bytes").is_null()) p.budget_bytes = integer(j, "budget_bytes", 1);
  p.smallest_feasible_budget = integer(j, "smallest_feasible_budget", 0);
  p.predicted_seconds = j.at("predicted_seconds");
  if (j.contains("module_sizes")) {
    if (!j.at("module_sizes").is_array()) refuse_plan("module_sizes must be an array");
    for (const json& size : j.at("module_sizes")) {
      if (!size.is_number_integer() || size.get<int64_t>() < 1)
        refuse_plan("module_sizes must hold integers >= 1");
      p.module_sizes.push_back(size.get<int64_t>());
    }
  }
  const json& heads = j.at("heads");
  for (size_t i = 0; i < heads.size(); ++i) {
    // The last unit's head is the network's own classifier; every other one is built from this.
    const json& h = heads.at(i);
    const bool last = i + 1 == heads.size();
    integer(h, "pool", last ? 0 : 1);  // before AuxHeadSpec::from_json casts them
    integer(h, "width", last ? 0 : 1);
    p.heads.push_back(AuxHeadSpec::from_json(h));
    if (p.heads.back().classifier != last)
      refuse_plan("head " + std::to_string(i) + (last ? " must" : " must not") + " be the classifier");
  }
  for (const auto& b : j.at("blocks")) {
    PlannedBlock block;
    const json& units = b.at("units");
    if (!units.is_array() || units.size() != 2 || !units[0].is_number_integer() ||
        !units[1].is_number_integer())
      refuse_plan("units must be [first, last], got " + units.dump());
    block.first_unit = units[0];
    block.last_unit = units[1];
    // Blocks cover the units in order, each starting where the previous one ended.
    const int64_t next = p.blocks.empty() ? 0 : p.blocks.back().last_unit + 1;
    if (block.first_unit != next || block.last_unit < block.first_unit)
      refuse_plan("block " + std::to_string(p.blocks.size()) + " covers units " + units.dump() +
             "; it must start at unit " + std::to_string(next));
    block.batch_size = integer(b, "batch_size", 1);
    block.epochs = integer(b, "epochs", 1);
    block.lr = b.at("lr");
    if (!std::isfinite(block.lr) || block.lr <= 0) refuse_plan("lr must be a positive number");
    block.cache_batch_size = integer(b, "cache_batch_size", 1);
    block.predicted_peak_bytes = integer(b, "predicted_peak_bytes", 0);
    block.predicted_seconds = b.at("predicted_seconds");
    block.unit_modes = b.value("unit_modes", std::vector<std::string>{});
    if (b.contains("threads")) block.threads = integer(b, "threads", 0);
    check_modes(block);
    p.blocks.push_back(block);
  }
  if (p.blocks.empty() || p.blocks.back().last_unit + 1 != static_cast<int64_t>(p.heads.size()))
    refuse_plan("the blocks cover " +
           std::to_string(p.blocks.empty() ? 0 : p.blocks.back().last_unit + 1) +
           " units, the heads " + std::to_string(p.heads.size()));
  return p;
}

std::string Plan::table() const {
  std::string out = "budget: " + (budget_bytes ? format_size(*budget_bytes, true) : "none") +
                    "   smallest feasible: " + format_size(smallest_feasible_budget, true) + "\n";
  out += "| block | units | batch | epochs | lr | cache batch | predicted peak | predicted s | "
         "unit modes | threads |\n|---|---|---|---|---|---|---|---|---|---|\n";
  char line[512];
  for (size_t i = 0; i < blocks.size(); ++i) {
    const auto& b = blocks[i];
    std::string modes;
    for (const auto& m : b.unit_modes) modes += (modes.empty() ? "" : " ") + m;
    if (modes.empty()) modes = "plain";
    const std::string threads = b.threads > 0 ? std::to_string(b.threads) : "run's";
    std::snprintf(line, sizeof line,
                  "| %zu | %lld-%lld | %lld | %lld | %.4g | %lld | %s | %.1f | %s | %s |\n", i,
                  static_cast<long long>(b.first_unit), static_cast<long long>(b.last_unit),
                  static_cast<long long>(b.batch_size), static_cast<long long>(b.epochs), b.lr,
                  static_cast<long long>(b.cache_batch_size),
                  format_size(b.predicted_peak_bytes).c_str(), b.predicted_seconds, modes.c_str(),
                  threads.c_str());
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
