// One training run from a Config: data, model, method, report. What `neuroflux train` does.
#pragma once

#include <c10/core/Device.h>

#include <string>

#include "neuroflux/config.h"
#include "neuroflux/data/data_splits.h"
#include "neuroflux/models/unit_chain.h"
#include "neuroflux/report.h"

namespace neuroflux {

/// Sets ATen's intra-op threads: `threads`, or every core when 0. LibTorch here starts with one.
void configure_threads(int64_t threads);

/// "cpu", "cuda", "cuda:N"; a CUDA device on a build or machine without CUDA is a ConfigError.
c10::Device parse_device(const std::string& text);

/// What every command starts from: threads set, seed applied, data loaded and normalised, the
/// model built for the data's shape.
struct PreparedRun {
  data::DataSplits data;
  UnitChain model{nullptr};
  c10::Device device = c10::Device(c10::kCPU);
};
PreparedRun prepare_run(const Config& config);

/// Loads the data, builds the model and trains it with config.method, writing to
/// config.output.dir. `resume` continues a killed run from its checkpoint.
Report run_training(const Config& config, bool resume);

}  // namespace neuroflux
