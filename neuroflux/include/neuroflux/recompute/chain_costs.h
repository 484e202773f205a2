// What recomputation and offloading schedules are computed from: per stage of a unit chain
// (each unit, then the classifier with the loss as the last stage), measured forward / backward
// seconds and the bytes a stage keeps alive. The DP in checkpoint_schedule.h reads only this, so
// tests can build one by hand.
#pragma once

#include <c10/core/Device.h>
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <vector>

#include "neuroflux/models/unit_chain.h"

namespace neuroflux {

struct StageCost {
  double forward_seconds = 0;    ///< forward with autograd recording
  double backward_seconds = 0;
  int64_t input_bytes = 0;       ///< the stage's input activation (x_s)
  int64_t output_bytes = 0;      ///< its output (x_{s+1}); the gradient of it has the same size
  /// Bytes a recording forward leaves alive besides its input: what autograd saved plus the
  /// output (rotor's "a-bar").
  int64_t saved_bytes = 0;
  int64_t forward_transient = 0;   ///< forward peak above input + saved_bytes
  int64_t backward_transient = 0;  ///< backward peak above what was live when it began
};

struct ChainCosts {
  int64_t batch_size = 0;             ///< the batch the stages were measured at
  std::vector<StageCost> stages;      ///< units..., classifier + loss
  /// Parameters, their gradients and the optimizer's state: live for the whole run.
  int64_t state_bytes = 0;
  /// Measured host-copy bandwidth, for offloading decisions (0 = not measured).
  double copy_bytes_per_second = 0;

  int64_t size() const { return static_cast<int64_t>(stages.size()); }
  /// Everything live besides the activations: state_bytes, the input batch and its labels.
  int64_t static_bytes() const;
  /// The same chain at another batch: activation bytes and seconds scale linearly with the
  /// batch (they are per sample), state_bytes does not.
  ChainCosts scaled_to(int64_t batch) const;
  nlohmann::json to_json() const;
  static ChainCosts from_json(const nlohmann::json& json);
};

/// Measures `model`'s stages at `batch` on `device` with random inputs, one stage at a time
/// (under whatever memory limit the caller set): `repeats` (at least 2) timed passes per stage,
/// the fastest time kept, bytes from the last pass. state_bytes counts parameters, gradients
/// and `optimizer_slots` parameter-sized tensors of optimizer state (SGD momentum 1, Adam 2).
///
/// `gradients_freed_in_backward` (train.fused_update): gradients are not state but live only
/// inside their stage's backward, so state_bytes leaves them out and each stage's backward
/// transient includes its own gradients; a stage's gradients are freed before the next stage is
/// measured. Otherwise the first pass allocates the stage's gradients and they stay, as they do
/// between a plain run's backward and its optimizer step.
ChainCosts measure_chain_costs(UnitChain& model, int64_t batch, const c10::Device& device,
                               int64_t optimizer_slots, int repeats = 3,
                               bool gradients_freed_in_backward = false);

}  // namespace neuroflux
