#include "neuroflux/plan/stage_placement.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <limits>

#include "neuroflux/util/errors.h"
#include "neuroflux/local/local_model.h"
#include "neuroflux/models/module_snapshot.h"
#include "neuroflux/profile/profiler.h"
#include "neuroflux/util/size_format.h"
#include "neuroflux/util/progress.h"

namespace neuroflux {

double StagePlacement::bottleneck_seconds() const {
  double worst = 0;
  for (const auto& s : stages) worst = std::max(worst, s.predicted_seconds);
  return worst;
}

nlohmann::json StagePlacement::to_json() const {
  nlohmann::json stages_json = nlohmann::json::array();
  for (size_t k = 0; k < stages.size(); ++k)
    stages_json.push_back({{"rank", k},
                           {"units", {stages[k].first_unit, stages[k].last_unit}},
                           {"predicted_seconds_per_batch", stages[k].predicted_seconds},
                           {"predicted_peak_bytes", static_cast<int64_t>(stages[k].predicted_peak_bytes)}});
  return {{"batch_size", batch_size}, {"stages", stages_json},
          {"bottleneck_seconds_per_batch", bottleneck_seconds()}};
}

std::string StagePlacement::table() const {
  std::string out = "rank  units    s/batch   predicted peak   (micro-batch " +
                    std::to_string(batch_size) + ")\n";
  char line[160];
  for (size_t k = 0; k < stages.size(); ++k) {
    const auto& s = stages[k];
    std::snprintf(line, sizeof line, "%4zu  %3lld-%-3lld  %8.4f   %s%s\n", k,
                  static_cast<long long>(s.first_unit), static_cast<long long>(s.last_unit),
                  s.predicted_seconds,
                  format_size(static_cast<int64_t>(s.predicted_peak_bytes)).c_str(),
                  s.predicted_seconds == bottleneck_seconds() ? "   <- bottleneck" : "");
    out += line;
  }
  return out;
}

namespace {

double stage_seconds(const Profile& profile, int64_t first, int64_t last, int64_t batch) {
  double seconds = 0;
  for (int64_t i = first; i <= last; ++i)
    seconds += profile.units[i].step_seconds_per_sample(batch) * static_cast<double>(batch);
  return seconds;
}

/// The min-max partition at `batch`; empty when no partition fits.
std::vector<PipelineStage> partition(const Profile& profile, const Planner& planner, int64_t ranks,
                                     int64_t batch, std::optional<int64_t> budget) {
  const auto n = static_cast<int64_t>(profile.units.size());
  const double inf = std::numeric_limits<double>::infinity();
  // best[k][j]: the slowest stage of the best split of units [0, j) into k stages.
  std::vector<std::vector<double>> best(ranks + 1, std::vector<double>(n + 1, inf));
  std::vector<std::vector<int64_t>> cut(ranks + 1, std::vector<int64_t>(n + 1, -1));
  best[0][0] = 0;
  auto fits = [&](int64_t first, int64_t last) {
    return !budget || planner.predicted_peak(first, last, batch) <= 0.9 * static_cast<double>(*budget);
  };
  for (int64_t k = 1; k <= ranks; ++k)
    for (int64_t j = k; j <= n; ++j)
      for (int64_t i = k - 1; i < j; ++i) {
        if (best[k - 1][i] == inf || !fits(i, j - 1)) continue;
        const double worst = std::max(best[k - 1][i], stage_seconds(profile, i, j - 1, batch));
        if (worst < best[k][j]) {
          best[k][j] = worst;
          cut[k][j] = i;
        }
      }
  if (best[ranks][n] == inf) return {};
  std::vector<PipelineStage> stages(ranks);
  for (int64_t k = ranks, j = n; k > 0; j = cut[k][j], --k) {
    PipelineStage& s = stages[k - 1];
    s.first_unit = cut[k][j];
    s.last_unit = j - 1;
    s.predicted_seconds = stage_seconds(profile, s.first_unit, s.last_unit, batch);
    s.predicted_peak_bytes = planner.predicted_peak(s.first_unit, s.last_unit, batch);
  }
  return stages;
}

}  // namespace

StagePlacement place_stages(const Profile& profile, const Planner& planner, int64_t ranks,
                            int64_t batch, int64_t max_batch_size, std::optional<int64_t> budget) {
  const auto n = static_cast<int64_t>(profile.units.size());
  if (ranks > n)
    throw ConfigError("pipeline: " + std::to_string(ranks) + " ranks but the model has only " +
                      std::to_string(n) + " units (one stage per rank, at least one unit each)");
  StagePlacement placement;
  if (batch > 0) {
    placement.batch_size = batch;
    placement.stages = partition(profile, planner, ranks, batch, budget);
  } else {
    // The largest micro-batch some placement admits: feasibility falls as the batch grows.
    int64_t lo = 0, hi = max_batch_size;
    while (lo < hi) {
      const int64_t mid = (lo + hi + 1) / 2;
      if (!partition(profile, planner, ranks, mid, budget).empty()) lo = mid; else hi = mid - 1;
    }
    placement.batch_size = std::max<int64_t>(lo, 1);
    if (lo > 0) placement.stages = partition(profile, planner, ranks, lo, budget);
  }
  if (placement.stages.empty())
    throw BudgetError("pipeline: no placement of " + std::to_string(n) + " units on " +
                      std::to_string(ranks) + " ranks fits memory.budget " +
                      format_size(budget.value_or(0)) + " at micro-batch " +
                      std::to_string(placement.batch_size),
                      0);
  return placement;
}

Profile pipeline_profile(const Config& config, UnitChain chain, const c10::Device& device) {
  chain->to(device);
  Stopwatch watch;
  const ModuleSnapshot snapshot(*chain);
  Profiler profiler(profiler_options(config), device);
  LocalModel probe(chain, config.method == "local" ? classic_head_specs(config, *chain)
                                                  : choose_head_specs(config, chain, profiler),
                  local_loss_spec(config));
  probe->to(device);
  Profile profile = profiler.profile(probe);
  snapshot.restore(*chain);
  profile.seconds = watch.seconds();
  return profile;
}

StagePlacement pipeline_placement(const Config& config, const Profile& profile,
                                  const data::DataSplits& data, int64_t ranks) {
  const Planner planner(profile, planner_inputs(config, data.train.size(), data.val.size(),
                                                data.test.size()));
  return place_stages(profile, planner, ranks, config.train.batch_size,
                      config.train.max_batch_size, config.memory.budget);
}

}  // namespace neuroflux
