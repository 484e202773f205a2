// Data-parallel pieces the trainers share: which samples a rank trains on, and keeping the
// ranks' weights and batch-norm statistics identical.
#pragma once

#include <torch/nn/module.h>

#include <memory>

#include "neuroflux/data/block_input.h"
#include "neuroflux/data/data_splits.h"
#include "neuroflux/distributed/communicator.h"
#include "neuroflux/report/report.h"

namespace neuroflux {

/// Each epoch `inner` is read in global batches of batch_size x world (the (seed, epoch) order
/// of a single process training on the combined batch) and this rank keeps its slice: rows
/// [rank x b, (rank + 1) x b). A last, partial global batch is split evenly (its remainder
/// dropped), and dropped on every rank when a slice would hold fewer than 2 samples, so all ranks
/// take the same number of steps. Validation and test are read whole: every rank evaluates the
/// same weights on the same data and so takes the same decisions.
std::unique_ptr<BlockInput> sharded_input(std::unique_ptr<BlockInput> inner, int rank, int world);

/// The fixed part of the training split a rank keeps for a whole NeuroFlux run (its activation
/// cache holds only these): a contiguous floor(n / world) samples; validation and test whole.
data::DataSplits train_shard(const data::DataSplits& data, int rank, int world);

/// `root`'s parameters and buffers on every rank (the start of a run; pipeline stages gathering
/// the trained network).
void broadcast_module(Communicator& comm, torch::nn::Module& module, int root = 0);
/// Floating-point buffers (batch norm's running statistics) averaged over the ranks: each rank
/// saw only its shard; the average is what evaluation and the checkpoint use.
void average_buffers(Communicator& comm, torch::nn::Module& module);

/// --resume: every rank must restart from the same step (`step` is this rank's checkpoint's, -1
/// when it has none); a DataError names the ranks that disagree.
void check_same_checkpoint(Communicator& comm, int64_t step, const std::string& where);

/// world_size, the distributed mode and every rank's peak memory and training seconds, gathered
/// into `report` (a collective: every rank calls it).
void add_rank_fields(Report& report, Communicator& comm, const std::string& mode);

}  // namespace neuroflux
