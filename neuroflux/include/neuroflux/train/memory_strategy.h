// How backprop's forward runs under memory.strategy: plainly ("none"), or through a
// ScheduledChain whose recompute / offload schedule is chosen for each batch size from costs
// profiled at that batch (the profile runs under the budget, like the trial it belongs to).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <optional>

#include "neuroflux/config/config.h"
#include "neuroflux/models/unit_chain.h"
#include "neuroflux/recompute/scheduled_chain.h"

namespace neuroflux {

class MemoryStrategy {
 public:
  MemoryStrategy(UnitChain model, const Config& config, c10::Device device);

  /// Makes `batch` the batch forward() runs at: profiles the chain at it and chooses the schedule
  /// (once per batch size). Throws c10::OutOfMemoryError when no schedule fits the budget, so a
  /// batch-size search treats it as a batch that does not fit.
  void use_batch(int64_t batch);
  /// The schedule chosen for the batch in use predicted a fit that a trial step then missed (its
  /// activation model is an estimate): switches that batch to the least-memory schedule, the one
  /// the smallest-budget measurement runs. False when it already runs that one, or is plain.
  bool fall_back_to_least_memory();
  /// Logits for `x`; loss.backward() recomputes / fetches what the schedule left out.
  at::Tensor forward(const at::Tensor& x);

  /// Forgets offload statistics gathered so far (by batch-size trials, say).
  void reset_statistics();

  bool plain() const { return strategy_ == "none"; }
  /// The schedule in use, its prediction and the offload statistics, for report.json.
  nlohmann::json describe() const;
  /// Predicted training peak at the batch in use (static bytes + the schedule's activations).
  std::optional<int64_t> predicted_peak_bytes() const;

 private:
  struct Choice {
    ChainCosts costs;
    CheckpointSchedule schedule;
  };
  UnitChain model_;
  std::string strategy_;
  std::optional<int64_t> budget_;
  int64_t optimizer_slots_;
  bool fused_update_;  ///< gradients live only inside backward (train.fused_update)
  c10::Device device_;
  std::shared_ptr<OffloadStore> store_;
  std::map<int64_t, Choice> choices_;
  std::optional<ScheduledChain> chain_;
  int64_t batch_ = 0;
};

}  // namespace neuroflux
