#include "train/neuroflux_block_step.h"

#include <torch/torch.h>

#include "neuroflux/exit/exit_selector.h"
#include "neuroflux/memory/measured_phase.h"
#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/util/intra_op_threads.h"
#include "neuroflux/util/size_format.h"
#include "neuroflux/train/block_trainer.h"
#include "neuroflux/util/progress.h"

namespace neuroflux {

namespace {

BlockTrainingOptions block_options(const BlockRun& run, const PlannedBlock& pb, int64_t k) {
  BlockTrainingOptions options;
  options.block_index = k;
  options.first_unit = pb.first_unit;
  options.last_unit = pb.last_unit;
  options.batch_size = pb.batch_size;
  options.unit_modes = pb.unit_modes;
  options.eval_batch_size = pb.cache_batch_size;
  options.max_epochs = pb.epochs;
  options.lr = pb.lr;
  options.patience = run.config.neuroflux.block_patience;
  options.min_delta = run.config.neuroflux.block_min_delta;
  options.seconds_before = run.state.train_seconds;
  options.comm = run.comm;
  options.bucket_bytes = run.config.distributed.bucket_bytes;
  options.collect_log_probs = run.config.neuroflux.exit_ensemble;
  return options;
}

/// The input of block k: the data set for the first, else the previous block's caches.
std::unique_ptr<BlockInput> block_input(BlockRun& run, int64_t k) {
  if (k == 0) return data_input(run.data, run.config, run.device);
  const PlannedBlock& previous = run.plan.blocks[k - 1];
  const double seconds = run.caches.ensure(run.model, k - 1, previous.last_unit,
                                           previous.cache_batch_size, run.device,
                                           run.state.phase_peaks);
  run.state.cache_seconds += seconds;
  run.state.train_seconds += seconds;
  return run.caches.input(run.device);
}

/// Records the block's heads and decides whether the blocks after it are worth training.
void decide_exit(BlockRun& run, int64_t k, const BlockOutcome& outcome, bool more) {
  const PlannedBlock& pb = run.plan.blocks[k];
  NeuroFluxRunState& state = run.state;
  const NeuroFluxConfig& nf = run.config.neuroflux;
  const BlockGain gain = record_block_heads(state.head_accuracy, pb.first_unit,
                                            outcome.head_val_accuracy);
  ProgressiveExit progressive(nf.exit_tolerance, nf.exit_patience, state.blocks_without_gain);
  const bool no_more_gain = progressive.after_block(gain.best_before, gain.best_after);
  state.blocks_without_gain = progressive.blocks_without_gain();
  if (!nf.progressive_exit || !more || !no_more_gain) return;
  state.stopped_early = true;
  log_line("progressive exit: block " + std::to_string(k) +
           " raised the best head by " + std::to_string(gain.best_after - gain.best_before) +
           ", the " + std::to_string(state.blocks_without_gain) +
           " block(s) in a row within tolerance " + std::to_string(nf.exit_tolerance) +
           "; units " + std::to_string(pb.last_unit + 1) + "-" +
           std::to_string(run.model->size() - 1) + " stay untrained");
}

/// What the caching pass took.
struct CachePass {
  int64_t peak_bytes = 0;
  double seconds = 0;
  int64_t stored_bytes = 0;
};

/// The caching pass: the block's outputs over every split, measured like training.
CachePass cache_outputs(BlockRun& run, BlockInput& input, int64_t k) {
  const PlannedBlock& pb = run.plan.blocks[k];
  MemoryMeter& meter = MemoryMeter::of(run.device);
  log_line("block " + std::to_string(k) + ": " + format_size(meter.current()) +
           " live before the caching pass");
  Stopwatch watch;
  int64_t peak = 0;
  {
    const MeasuredPhase writing(meter, run.state.phase_peaks, "cache_write",
                                run.config.memory.budget);
    run.caches.write(run.model, input, k, pb.first_unit, pb.last_unit, pb.cache_batch_size);
    peak = writing.peak();
  }
  const CachePass pass{peak, watch.seconds(), run.caches.bytes()};
  run.state.cache_seconds += pass.seconds;
  run.state.train_seconds += pass.seconds;
  return pass;
}

BlockReport block_report(const PlannedBlock& pb, const BlockOutcome& outcome,
                         int64_t training_peak, const CachePass& pass, int64_t threads) {
  BlockReport block;
  block.first_unit = pb.first_unit;
  block.last_unit = pb.last_unit;
  block.batch_size = pb.batch_size;
  block.epochs = outcome.epochs_run;
  block.predicted_peak_bytes = pb.predicted_peak_bytes;
  block.seconds = outcome.train_seconds;
  block.cache_bytes = pass.stored_bytes;
  block.peak_memory_bytes = std::max(training_peak, pass.peak_bytes);
  block.extra = {{"epochs_planned", pb.epochs},
                 {"best_epoch", outcome.best_epoch},
                 {"lr", pb.lr},
                 {"training_peak_bytes", training_peak},
                 {"cache_pass_peak_bytes", pass.peak_bytes},
                 {"cache_seconds", pass.seconds},
                 {"eval_seconds", outcome.eval_seconds},
                 {"predicted_seconds", pb.predicted_seconds},
                 {"head_val_accuracy", outcome.head_val_accuracy},
                 {"threads", threads}};
  if (!pb.unit_modes.empty()) block.extra["unit_modes"] = pb.unit_modes;
  return block;
}

}  // namespace

void run_block(BlockRun& run, int64_t k) {
  const PlannedBlock& pb = run.plan.blocks[k];
  NeuroFluxRunState& state = run.state;
  MemoryMeter& meter = MemoryMeter::of(run.device);
  std::unique_ptr<BlockInput> input = block_input(run, k);
  // The plan's thread count covers the block's training, validation and caching pass.
  const IntraOpThreads block_threads(pb.threads);
  const int64_t threads = at::get_num_threads();
  if (pb.threads > 0)
    log_line("block " + std::to_string(k) + ": " + std::to_string(threads) +
             " intra-op thread(s), as planned");
  // The block's own phases: its training peak is theirs, the run's gets them too.
  PhasePeaks block_phases;
  {
    const MeasuredPhase placing(meter, block_phases, "train", run.config.memory.budget);
    move_units_to_device(run.model, pb.first_unit, pb.last_unit, run.device);
  }
  log_line("block " + std::to_string(k) + ": " + format_size(meter.current()) +
           " live on the device before training");
  BlockTrainingOptions options = block_options(run, pb, k);
  options.phases = &block_phases;
  options.device = run.device;
  const BlockOutcome outcome = train_block(run.model, *input, options, run.config);
  const int64_t training_peak = block_phases.max();
  state.phase_peaks.merge(block_phases);
  state.train_seconds += outcome.train_seconds;
  state.eval_seconds += outcome.eval_seconds;
  for (auto& h : outcome.history) state.history.push_back(h);
  if (!outcome.head_val_log_probs.empty()) {
    state.head_val_log_probs.resize(static_cast<size_t>(run.model->size()));
    for (size_t j = 0; j < outcome.head_val_log_probs.size(); ++j)
      state.head_val_log_probs[static_cast<size_t>(pb.first_unit) + j] =
          std::move(outcome.head_val_log_probs[j]);
  }

  const bool more = k + 1 < static_cast<int64_t>(run.plan.blocks.size());
  decide_exit(run, k, outcome, more);
  CachePass pass;
  if (more && !state.stopped_early) pass = cache_outputs(run, *input, k);
  input.reset();
  const BlockReport block = block_report(pb, outcome, training_peak, pass, threads);
  state.blocks.push_back(block);
  move_units_to_host(run.model, pb.first_unit, pb.last_unit, run.device);
  state.blocks_done = k + 1;
}

}  // namespace neuroflux
