// Where a later block's inputs come from: the previous block's activation cache, or (to check
// the cache, or when there is none) the frozen earlier units recomputed on every batch. Both give
// (input, label) batches in the shuffled order of (seed, epoch) that block 0's data input
// (data/block_input.h) also follows, so a block trained from any of them sees the same inputs.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <array>
#include <functional>
#include <memory>

#include "neuroflux/cache/activation_cache.h"
#include "neuroflux/config/config.h"
#include "neuroflux/data/block_input.h"
#include "neuroflux/data/data_splits.h"
#include "neuroflux/local/local_model.h"

namespace neuroflux {

/// A later block: the previous block's caches of the three splits.
std::unique_ptr<BlockInput> cache_input(std::shared_ptr<const ActivationCache> train,
                                        std::shared_ptr<const ActivationCache> val,
                                        std::shared_ptr<const ActivationCache> test,
                                        const data::DataSplits& data, const Config& config,
                                        const c10::Device& device);

/// Units [0, first) of `model` run in eval mode on each data batch (not augmented, like a
/// cache). The caller keeps those units on the device.
std::unique_ptr<BlockInput> recompute_input(const data::DataSplits& data, const Config& config,
                                            LocalModel model, int64_t first,
                                            const c10::Device& device);

using SplitCaches = std::array<std::shared_ptr<ActivationCache>, 3>;

/// Runs units [first, last] of `model` (eval mode, no autograd) over every split of `input` in
/// order and stores the outputs; with first > last the input itself is stored (an input that
/// already ends at the wanted unit). `options.path` is replaced by `path(split)` for disk caches.
SplitCaches write_block_caches(LocalModel& model, BlockInput& input, int64_t first, int64_t last,
                               int64_t batch_size, const CacheOptions& options,
                               const std::function<std::string(Split)>& path, uint64_t key);

}  // namespace neuroflux
