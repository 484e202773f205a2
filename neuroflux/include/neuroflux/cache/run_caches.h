// The activation caches of one NeuroFlux run: where they live, the key that ties them to the
// weights that produced them, and their removal when the run is complete. Block k's caches hold
// the outputs of its last unit over the three splits; block k + 1 trains on them instead of
// re-running units 0..last.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <string>

#include "neuroflux/cache/block_inputs.h"
#include "neuroflux/config/config.h"
#include "neuroflux/data/data_splits.h"
#include "neuroflux/local/local_model.h"
#include "neuroflux/util/phase_peaks.h"

namespace neuroflux {

class Communicator;

/// Where a run keeps its disk caches: OUT/cache, or a directory of its own inside the
/// neuroflux.cache.dir a user named (named after OUT, so a resumed run finds its caches again;
/// one per rank), or one in the system's temporary directory for a run without OUT.
std::string run_cache_directory(const std::string& user_dir, const std::string& out,
                                const Communicator* comm);

/// Ties a cache to what produced it: `producer` (the config and plan as text) and the weights of
/// units 0..last_unit.
uint64_t cache_key(const std::string& producer, LocalModel& model, int64_t last_unit);

class RunCaches {
 public:
  /// `data` is the split set the run trains on (a rank's shard in data parallel); `producer`
  /// goes into every key. A disk cache's directory is created, marked as the run's.
  RunCaches(const Config& config, const std::string& out, const Communicator* comm,
            const data::DataSplits& data, std::string producer);

  /// Runs units [first, last] over every split of `input` (block `block`'s input) and keeps
  /// their outputs as that block's caches.
  void write(LocalModel& model, BlockInput& input, int64_t block, int64_t first, int64_t last,
             int64_t batch_size);

  /// Block `block`'s caches, which the block after it trains on: the ones written last, else
  /// opened from disk when they are there and valid (a resumed run), else recomputed from the
  /// trained units 0..last on `device` (those units are moved there and back). Returns the
  /// seconds spent recomputing (0 when none was needed). Recomputing is the phase
  /// "cache_recompute", measured under memory.budget and recorded in `phases`.
  double ensure(LocalModel& model, int64_t block, int64_t last, int64_t batch_size,
                const c10::Device& device, PhasePeaks& phases);

  /// A BlockInput over the current caches.
  std::unique_ptr<BlockInput> input(const c10::Device& device) const;

  /// Bytes stored by the current caches.
  int64_t bytes() const;

  /// Removes the run's cache directory (only a directory this run made); the run is complete.
  void remove();

 private:
  std::string path(int64_t block, Split split) const;

  const Config& config_;
  const data::DataSplits& data_;
  std::string producer_;
  std::string directory_;
  CacheOptions options_;
  SplitCaches caches_;
  int64_t block_ = -1;  ///< whose outputs caches_ hold
};

}  // namespace neuroflux
