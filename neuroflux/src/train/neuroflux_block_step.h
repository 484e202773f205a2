// One block of a NeuroFlux run, start to end: its input (the data set, or the previous block's
// caches), training under the budget, the exit decision, and the caching pass that feeds the
// next block. NeuroFluxTrainer::fit calls it once per planned block.
#pragma once

#include <c10/core/Device.h>

#include <memory>

#include "neuroflux/cache/run_caches.h"
#include "neuroflux/config/config.h"
#include "neuroflux/data/data_splits.h"
#include "neuroflux/local/local_model.h"
#include "neuroflux/plan/plan.h"
#include "train/neuroflux_run_state.h"

namespace neuroflux {

class Communicator;

/// What every block of one run works on.
struct BlockRun {
  const Config& config;
  c10::Device device;
  std::shared_ptr<Communicator> comm;
  const data::DataSplits& data;  ///< the training data of this rank
  const Plan& plan;
  LocalModel& model;
  RunCaches& caches;
  NeuroFluxRunState& state;
};

/// Trains block `k` of the plan and records it in `run.state` (blocks_done = k + 1). Caches the
/// block's outputs when a later block will train, and sets state.stopped_early when progressive
/// exit skips the rest.
void run_block(BlockRun& run, int64_t k);

}  // namespace neuroflux
