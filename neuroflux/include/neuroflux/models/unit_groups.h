// Gradient-isolated modules of several units. Local learning's error grows with the number of
// modules a network is cut into (Wang et al., ICLR 2021: 2-4 modules stay within half a point of
// backprop on ResNet-110, one per block does not), so neuroflux.module_units may join consecutive
// units into one: its units train end to end by backprop inside it, with one auxiliary head at
// its end, and nothing crosses from one module to the next. A grouped chain's unit i is module i,
// so profiling, planning, caching and exits all work on module boundaries.
#pragma once

#include <cstdint>
#include <vector>

#include "neuroflux/config/config.h"
#include "neuroflux/models/unit_chain.h"

namespace neuroflux {

/// neuroflux.module_units's words: "stage" and "auto" (NeuroFlux's planner chooses the modules,
/// starting from the stages: train/neuroflux_trainer.h).
constexpr int64_t kStageModules = 0;
constexpr int64_t kAutoModules = -1;

/// How many units each module takes: `module_units` at a time (the last module may be shorter),
/// or (0, "stage") one module per resolution stage: each maximal run of consecutive units whose
/// outputs have the same height and width.
std::vector<int64_t> module_sizes(int64_t module_units, UnitChainImpl& chain);

/// A chain whose unit i runs units [s_i, s_i + sizes[i]) of `chain` in order. The modules are
/// shared with `chain`, not copied; the classifier too. The result records `sizes`.
UnitChain group_units(UnitChain chain, const std::vector<int64_t>& sizes);

/// neuroflux.module_units as a run of `config` applies it: local learning and NeuroFlux group
/// their units; backprop trains the whole network end to end, so grouping changes nothing there
/// and it keeps one module per unit.
int64_t effective_module_units(const Config& config);

/// `chain` grouped as `config` says (unchanged with one unit per module). "auto" leaves a
/// NeuroFlux run's chain ungrouped for its planner to group, and groups by stage otherwise.
UnitChain apply_module_units(UnitChain chain, const Config& config);

/// Splits module `index` of `sizes` into two halves (the first takes the odd unit).
std::vector<int64_t> split_module(std::vector<int64_t> sizes, size_t index);

}  // namespace neuroflux
