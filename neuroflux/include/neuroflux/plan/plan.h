// The Plan: how NeuroFlux will train. A plain value (JSON in and out) so `neuroflux plan` prints
// it and tests can build one by hand.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "neuroflux/local/aux_head.h"

namespace neuroflux {

struct PlannedBlock {
  int64_t first_unit = 0, last_unit = 0;  ///< inclusive
  int64_t batch_size = 0;
  int64_t epochs = 0;                     ///< at most; per-block early stopping may end sooner
  double lr = 0;                          ///< base rate scaled for the block's batch size
  int64_t cache_batch_size = 0;           ///< batch of the eval-mode caching pass
  int64_t predicted_peak_bytes = 0;       ///< at batch_size, training
  double predicted_seconds = 0;           ///< training + caching, all epochs
  /// How each unit's forward runs in training (local/unit_step.h): "plain", "recompute" or
  /// "row_centric"; empty = all plain.
  std::vector<std::string> unit_modes;
  /// Intra-op threads the block trains, validates and caches with; 0 = the run's `threads`.
  /// The planner sets it (neuroflux.block_threads = "auto") only where fewer threads let the
  /// block fit, or take a batch that trains faster.
  int64_t threads = 0;
};

struct Plan {
  std::optional<int64_t> budget_bytes;
  /// neuroflux.module_units = "auto": built units per module, as the planner chose them
  /// (plan/module_choice.h); the plan's units are these modules. Empty otherwise.
  std::vector<int64_t> module_sizes;
  std::vector<AuxHeadSpec> heads;         ///< one per unit
  std::vector<PlannedBlock> blocks;
  int64_t smallest_feasible_budget = 0;   ///< every unit its own block at batch 2
  double predicted_seconds = 0;

  nlohmann::json to_json() const;
  static Plan from_json(const nlohmann::json& json);
  std::string table() const;
};

}  // namespace neuroflux
