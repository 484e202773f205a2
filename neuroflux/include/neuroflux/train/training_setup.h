// What every trainer needs besides the model and the data.
#pragma once

#include <c10/core/Device.h>

#include <memory>
#include <string>

#include "neuroflux/config/config.h"

namespace neuroflux {

class Communicator;

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

}  // namespace neuroflux
