// The profiler: per unit with its head, parameter / gradient / optimizer bytes, a training step's
// transient peak measured with MemoryMeter at several batch sizes and fitted as static +
// per-sample * b, and seconds per sample at those sizes. Runs on the real modules and restores
// their weights afterwards.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "neuroflux/config/config.h"
#include "neuroflux/local/local_model.h"
#include "neuroflux/profile/profile.h"

namespace neuroflux {

struct ProfilerOptions {
  /// Capped by max_batch. 2 is the smallest batch a plan gives a block: the floor is set there.
  std::vector<int64_t> batch_sizes = {2, 8, 32, 128};
  int64_t max_batch = 256;
  int repeats = 3;                                  ///< timed steps per size (the minimum is kept)
  TrainConfig train;                                ///< the optimizer the steps use
  /// Where that optimizer keeps its state (memory.optimizer_state): the trial steps run with the
  /// run's own options, so a host state or fused updates show in the measured floor.
  MemoryConfig memory;
  /// Also measure each unit's step in the other modes it can run in (recompute, row_centric),
  /// so the planner can choose them: neuroflux.unit_modes = "auto".
  bool unit_modes = true;
  /// After the timed steps of each batch size, one more plain step under an AllocationTrace
  /// (UnitProfile::allocations; CPU only). For diagnosis: the trace slows that step down.
  bool trace_allocations = false;
  /// The model waits on the host (move_to_host): each unit, its head and decoder come to the
  /// device for their own measurement only, as in training, so a model whose weights (or whose
  /// "copies" heads) exceed the budget together still profiles under it.
  bool host_resident_model = false;
  /// Also measure each unit's plain step at fewer intra-op threads than the current count
  /// (thread_counts_below), so the planner can give a block fewer threads where that fits it:
  /// neuroflux.block_threads = "auto".
  bool fewer_threads = false;
};

class Profiler {
 public:
  Profiler(ProfilerOptions options, c10::Device device);

  /// Every unit of `model` with its head.
  Profile profile(LocalModel& model);
  UnitProfile profile_unit(LocalModel& model, int64_t unit);

  /// A unit alone (no head, loss = mean square of its output), for the adaptive head rule.
  UnitCost unit_cost(UnitChain& chain, int64_t unit);
  /// Forward + backward seconds per sample of a head built from `spec`.
  double head_seconds_per_sample(const std::vector<int64_t>& input_shape, const AuxHeadSpec& spec,
                                 int64_t num_classes);

 private:
  ProfilerOptions options_;
  c10::Device device_;
};

/// The head of every unit as config.neuroflux.aux says: "fixed" (aux_width at full resolution)
/// or "adaptive" (choose_adaptive_head from each unit's measured cost).
std::vector<AuxHeadSpec> choose_head_specs(const Config& config, UnitChain& chain,
                                           Profiler& profiler);

/// Profiler options from a config (optimizer, max batch).
ProfilerOptions profiler_options(const Config& config);

}  // namespace neuroflux
