// End-to-end backpropagation, the baseline every other method is measured against.
#pragma once

#include <c10/core/Device.h>

#include <functional>
#include <memory>
#include <string>

#include "neuroflux/config.h"
#include "neuroflux/data/data_splits.h"
#include "neuroflux/memory_meter.h"
#include "neuroflux/models/unit_chain.h"
#include "neuroflux/report.h"

namespace neuroflux {

class Communicator;

/// What every trainer needs besides the model and the data.
struct TrainingSetup {
  Config config;
  c10::Device device = c10::Device(c10::kCPU);
  std::string out_dir;   ///< report, history, checkpoints and the model go here ("" = nowhere)
  bool resume = false;   ///< continue from out_dir's checkpoint when there is one
  /// The job's ranks (distributed.mode "data"); null when the run is one process.
  std::shared_ptr<Communicator> comm;
  /// False on ranks > 0 of a distributed run: only checkpoints (and caches) go to out_dir, and
  /// rank 0 alone writes report.json, the model and the plan.
  bool write_results = true;
};

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
