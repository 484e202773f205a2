// One optimizer per unit (local learning, pipeline stages): their states travel in an archive
// of their own beside the checkpoint, "step-N-optimizers.pt", with one entry per unit named by
// the unit's index in the whole network ("unit<i>"), which the checkpoint's state names.
#pragma once

#include <torch/optim/optimizer.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace torch::serialize {
class InputArchive;
}

namespace neuroflux {

using UnitOptimizers = std::vector<std::unique_ptr<torch::optim::Optimizer>>;

/// The archive's file name after `epochs_done` epochs.
std::string unit_optimizers_file(int64_t epochs_done);

/// Writes the states of units first_unit, first_unit + 1, ... to `path` atomically.
void save_unit_optimizers(const UnitOptimizers& optimizers, int64_t first_unit,
                          const std::string& path);

/// Reads them back into `optimizers` from the archive (EpochCheckpoint::read_archive verifies
/// and opens the file).
void load_unit_optimizers(UnitOptimizers& optimizers, int64_t first_unit,
                          torch::serialize::InputArchive& archive);

}  // namespace neuroflux
