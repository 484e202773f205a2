// Pipeline mode (distributed.mode = "pipeline", methods local and neuroflux): rank k trains the
// units of stage k (place_stages) on micro-batches of activations received from rank k-1 and
// sends its outputs to rank k+1, so all stages train at once (decoupled greedy learning). No
// gradient crosses a stage: the units learn exactly what sequential local learning teaches them.
#pragma once

#include "neuroflux/data/data_splits.h"
#include "neuroflux/models/unit_chain.h"
#include "neuroflux/plan/stage_placement.h"
#include "neuroflux/report/report.h"
#include "neuroflux/train/training_setup.h"

namespace neuroflux {

class PipelineTrainer {
 public:
  /// `setup.comm` must be set; rank 0 writes report.json, model.pt and full_model.pt.
  explicit PipelineTrainer(TrainingSetup setup);
  Report fit(UnitChain chain, const data::DataSplits& data);

 private:
  TrainingSetup setup_;
};

}  // namespace neuroflux
