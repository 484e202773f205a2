// One training run from a Config: data, model, method, report. What `neuroflux train` does.
#pragma once

#include <c10/core/Device.h>

#include <memory>
#include <string>

#include "neuroflux/config/config.h"
#include "neuroflux/data/data_splits.h"
#include "neuroflux/models/unit_chain.h"
#include "neuroflux/report/report.h"

namespace neuroflux {

class Communicator;

/// Sets ATen's intra-op threads: `threads`, or when 0 the cores shared out among the
/// `local_ranks` processes of a distributed job on this machine. LibTorch here starts with one.
void configure_threads(int64_t threads, int64_t local_ranks = 1);

/// "cpu", "cuda", "cuda:N"; a CUDA device on a build or machine without CUDA is a ConfigError.
c10::Device parse_device(const std::string& text);

/// What every command starts from: threads set, seed applied, data loaded and normalised, the
/// model built for the data's shape.
struct PreparedRun {
  data::DataSplits data;
  UnitChain model{nullptr};
  c10::Device device = c10::Device(c10::kCPU);
};
PreparedRun prepare_run(const Config& config, int64_t local_ranks = 1);

/// Loads the data, builds the model and trains it with config.method, writing to
/// config.output.dir. `resume` continues a killed run from its checkpoint. With `comm` (a job of
/// several ranks) the run follows config.distributed: rank 0 writes the results to
/// output.dir, rank k > 0 only its checkpoints, under output.dir/rank-k.
Report run_training(const Config& config, bool resume,
                    std::shared_ptr<Communicator> comm = nullptr, int64_t local_ranks = 1);

}  // namespace neuroflux
