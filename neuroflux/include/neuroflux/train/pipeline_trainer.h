// Pipeline mode (distributed.mode = "pipeline", methods local and neuroflux): rank k trains the
// units of stage k (place_stages) on micro-batches of activations received from rank k-1 and
// sends its outputs to rank k+1, so all stages train at once (decoupled greedy learning). No
// gradient crosses a stage: the units learn exactly what sequential local learning teaches them.
#pragma once

#include "neuroflux/data/data_splits.h"
#include "neuroflux/models/unit_chain.h"
#include "neuroflux/plan/stage_placement.h"
#include "neuroflux/profile/profile.h"
#include "neuroflux/report.h"
#include "neuroflux/train/training_setup.h"

namespace neuroflux {

/// Every unit with the head the method gives it (local: fixed width; neuroflux: adaptive),
/// profiled. `chain`'s weights are left as they were.
Profile pipeline_profile(const Config& config, UnitChain chain, const c10::Device& device);

/// The stages of `ranks` ranks for this config (micro-batch train.batch_size, or "auto").
StagePlacement pipeline_placement(const Config& config, const Profile& profile,
                                  const data::DataSplits& data, int64_t ranks);

class PipelineTrainer {
 public:
  /// `setup.comm` must be set; rank 0 writes report.json, model.pt and full_model.pt.
  explicit PipelineTrainer(TrainingSetup setup);
  Report fit(UnitChain chain, const data::DataSplits& data);

 private:
  TrainingSetup setup_;
};

}  // namespace neuroflux
