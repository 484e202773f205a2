// Runs a UnitChain's training forward under a CheckpointSchedule: stored stages record autograd
// as usual; a checkpointed segment runs without recording, keeps only its input (or offloads it)
// and, when the backward pass reaches it, re-runs itself with recording on and back-propagates.
// The loss's backward() then does the rest: gradients equal plain backprop's.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>

#include "neuroflux/models/unit_chain.h"
#include "neuroflux/recompute/checkpoint_schedule.h"
#include "neuroflux/recompute/offload_store.h"

namespace neuroflux {

/// `module(x)` run as one checkpointed segment: nothing inside it is kept for the backward pass
/// but its input, and the backward re-runs it (same random numbers, batch norm statistics
/// updated once). For a NeuroFlux unit whose step does not otherwise fit.
at::Tensor checkpoint(torch::nn::Sequential module, const at::Tensor& x);

/// Stage `stage` of `model` (a unit, or the classifier for the last stage) applied to `x`.
at::Tensor run_stage(UnitChain& model, int64_t stage, const at::Tensor& x);

class ScheduledChain {
 public:
  /// `store` is needed when the schedule offloads; it must outlive every backward pass.
  ScheduledChain(UnitChain model, CheckpointSchedule schedule,
                 std::shared_ptr<OffloadStore> store = nullptr);

  /// Logits for `x`, with a graph whose backward recomputes / fetches per the schedule. One
  /// forward's graph must be back-propagated (or dropped) before the next forward.
  at::Tensor forward(const at::Tensor& x);

  const CheckpointSchedule& schedule() const { return schedule_; }
  /// Offload statistics so far (zeros without a store).
  OffloadStats offload_stats() const;

 private:
  UnitChain model_;
  CheckpointSchedule schedule_;
  std::shared_ptr<OffloadStore> store_;
};

}  // namespace neuroflux
