// Which units each rank trains in pipeline mode. Local learning sends no gradient across units,
// so stage k trains its units on micro-batches streamed from stage k-1 while the other stages
// train theirs: the pipeline runs at the pace of its slowest stage. The placement is the
// contiguous partition of the unit chain into one stage per rank that minimises the slowest
// stage's predicted time per micro-batch, each stage's predicted peak within the rank's budget
// (the stage-placement problem of PipeDream's dynamic program, restricted to one replica per
// stage).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "neuroflux/config/config.h"
#include "neuroflux/data/data_splits.h"
#include "neuroflux/models/unit_chain.h"
#include "neuroflux/plan/planner.h"
#include "neuroflux/profile/profile.h"

namespace neuroflux {

struct PipelineStage {
  int64_t first_unit = 0, last_unit = 0;   ///< inclusive
  double predicted_seconds = 0;            ///< per micro-batch: the units' training steps
  double predicted_peak_bytes = 0;
};

struct StagePlacement {
  int64_t batch_size = 0;                  ///< the micro-batch every stage trains on
  std::vector<PipelineStage> stages;       ///< stage k runs on rank k
  double bottleneck_seconds() const;
  nlohmann::json to_json() const;
  std::string table() const;
};

/// One stage per rank for `ranks` ranks at micro-batch `batch` (0: the largest every stage's
/// memory admits, at most max_batch_size). BudgetError when no placement fits the budget;
/// ConfigError when there are more ranks than units.
StagePlacement place_stages(const Profile& profile, const Planner& planner, int64_t ranks,
                            int64_t batch, int64_t max_batch_size, std::optional<int64_t> budget);

/// Every unit with the head the method gives it (local: fixed width; neuroflux: adaptive),
/// profiled. `chain`'s weights are left as they were.
Profile pipeline_profile(const Config& config, UnitChain chain, const c10::Device& device);

/// The stages of `ranks` ranks for this config (micro-batch train.batch_size, or "auto").
StagePlacement pipeline_placement(const Config& config, const Profile& profile,
                                  const data::DataSplits& data, int64_t ranks);

}  // namespace neuroflux
