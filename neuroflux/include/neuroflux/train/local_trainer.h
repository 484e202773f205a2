// Classic local learning, the baseline NeuroFlux is compared with: every unit with a fixed-width
// full-resolution head, all units trained together on each batch (each unit's input detached,
// one optimizer step per unit), one batch size for the whole network.
#pragma once

#include "neuroflux/data/data_splits.h"
#include "neuroflux/models/unit_chain.h"
#include "neuroflux/report/report.h"
#include "neuroflux/train/training_setup.h"

namespace neuroflux {

class LocalTrainer {
 public:
  explicit LocalTrainer(TrainingSetup setup);

  /// Writes report.json, history.csv, model.pt (units + classifier) and checkpoints to out_dir.
  Report fit(UnitChain chain, const data::DataSplits& data);

 private:
  TrainingSetup setup_;
};

}  // namespace neuroflux
