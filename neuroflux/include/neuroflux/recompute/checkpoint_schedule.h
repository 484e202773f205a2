// Which activations to keep, recompute or offload while training a unit chain under a memory
// budget (memory.strategy = checkpoint | checkpoint_sqrt | offload).
//
// A schedule is a tree over the stages [0, n): each node either *stores* one stage (runs it with
// autograd recording, as plain backprop does) or *checkpoints* a segment [first, last): runs it
// without recording, keeps only its input, and in the backward pass re-runs it under the node's
// own inner schedule, then back-propagates. The optimal tree is found by the dynamic program of
// Beaumont, Eyraud-Dubois, Herrmann, Joly & Shilova, "Optimal checkpointing for heterogeneous
// chains" (rotor, 2019), itself a generalisation of Griewank & Walther's Revolve: least forward +
// recompute + backward seconds whose modelled peak fits the budget.
//
// Offloading adds one choice at the top level: a checkpointed segment's kept input may be copied
// to host memory while the forward pass goes on and prefetched back one segment ahead during the
// backward pass, as vDNN (Rhu et al., MICRO 2016) does for layer inputs. Following Beaumont,
// Eyraud-Dubois, Shilova, "Efficient combination of rematerialization and offloading for training
// DNNs" (NeurIPS 2021), a boundary is only offloaded when its transfer can hide behind compute:
// its copy time (bytes / measured bandwidth) must not exceed the forward seconds of the segment
// it feeds nor the backward seconds of the segment after it; otherwise it stays resident.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "neuroflux/recompute/chain_costs.h"

namespace neuroflux {

struct ScheduleNode {
  enum class Kind { Store, Checkpoint };
  Kind kind = Kind::Store;
  int64_t first = 0, last = 0;            ///< stages [first, last); Store has last = first + 1
  bool offload_input = false;             ///< Checkpoint at the top level only
  std::vector<ScheduleNode> inner;        ///< Checkpoint: how its recompute runs

  static ScheduleNode store(int64_t stage);
  static ScheduleNode checkpoint(int64_t first, int64_t last, std::vector<ScheduleNode> inner,
                                 bool offload_input = false);
};

struct CheckpointSchedule {
  std::string strategy;                   ///< none | checkpoint | checkpoint_sqrt | offload
  std::vector<ScheduleNode> nodes;        ///< the top level, covering [0, n)
  double predicted_seconds = 0;           ///< forward + recompute + backward, per step
  int64_t predicted_activation_peak = 0;  ///< above static bytes, per step
  int64_t offloaded_bytes = 0;            ///< per step

  /// Compact text: "[0-2]c [3] [4] [5-7]o ..." (c: checkpointed, o: offloaded, s: stored).
  std::string describe() const;
  nlohmann::json to_json() const;
  static CheckpointSchedule from_json(const nlohmann::json& json);
  int64_t recomputed_stages() const;      ///< stage forwards run more than once, per step
};

/// Every stage stored: plain backprop.
CheckpointSchedule store_all_schedule(const ChainCosts& costs);

/// Chen et al.'s rule: the units cut into ceil(sqrt(n)) segments of equal length, each
/// checkpointed and recomputed once with every stage stored; the classifier stage is stored.
CheckpointSchedule sqrt_schedule(const ChainCosts& costs);

/// The least-time schedule whose modelled activation peak fits `activation_budget` bytes
/// (the budget less ChainCosts::static_bytes()), or nullopt when none does. `offload` enables
/// top-level offloading of boundaries whose transfer can be hidden. Memory is discretised into
/// `slots` equal parts of the budget, rounding every cost up, so the answer never overshoots.
std::optional<CheckpointSchedule> optimal_schedule(const ChainCosts& costs,
                                                   int64_t activation_budget, bool offload,
                                                   int slots = 400);

/// The schedule with the least modelled activation peak (bisection over the DP's budget), for
/// telling a user the smallest budget that would work.
CheckpointSchedule least_memory_schedule(const ChainCosts& costs, bool offload);

/// The activation peak (bytes above static) and seconds of a schedule under the cost model, by
/// walking its execution: what the DP optimises and what tests compare with the meter.
struct SchedulePrediction {
  int64_t activation_peak = 0;
  double seconds = 0;
  int64_t offloaded_bytes = 0;
};
SchedulePrediction predict(const CheckpointSchedule& schedule, const ChainCosts& costs);

/// Whether stage boundary `stage` (the input of stage `stage`) can be offloaded with its copy
/// hidden behind compute, per the rule in this header's comment.
bool transfer_hideable(const ChainCosts& costs, int64_t stage);

}  // namespace neuroflux
