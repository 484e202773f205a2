// End-to-end backpropagation, the baseline every other method is measured against.
#pragma once

#include <functional>
#include <string>

#include "neuroflux/config/config.h"
#include "neuroflux/data/data_splits.h"
#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/models/unit_chain.h"
#include "neuroflux/report/report.h"
#include "neuroflux/train/training_setup.h"

namespace neuroflux {

class BackpropTrainer {
 public:
  explicit BackpropTrainer(TrainingSetup setup);

  /// Trains `model` on data.train, evaluating on data.val each epoch and data.test at the end.
  /// Writes report.json, history.csv, model.pt and per-epoch checkpoints to out_dir.
  Report fit(UnitChain model, const data::DataSplits& data);

 private:
  TrainingSetup setup_;
};

/// The batch size to train with: train.batch_size, checked against memory.budget by a real trial
/// step, or ("auto") the largest that fits. `trial` runs training steps at a batch size.
int64_t choose_batch_size(const Config& config, MemoryMeter& meter,
                          const std::function<void(int64_t)>& trial, const std::string& what);

}  // namespace neuroflux
