// The interface every source of a block's (input, label) batches implements, by split: the data
// set (here), an activation cache or recomputed earlier units (cache/block_inputs.h), one rank's
// shard (distributed/). It sits beside the data, so that every layer above can take one.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <memory>

#include "neuroflux/config/config.h"
#include "neuroflux/data/data_splits.h"

namespace neuroflux {

enum class Split { kTrain = 0, kVal = 1, kTest = 2 };
const char* split_name(Split split);
const data::ImageSet& split_of(const data::DataSplits& data, Split split);

using BatchFn = std::function<void(const at::Tensor& inputs, const at::Tensor& labels)>;

class BlockInput {
 public:
  virtual ~BlockInput() = default;
  /// One training epoch in the shuffled order of (seed, epoch).
  virtual void train_epoch(int64_t batch_size, int64_t epoch, const BatchFn& fn) = 0;
  /// A split in order, for evaluation and the caching pass.
  virtual void in_order(Split split, int64_t batch_size, const BatchFn& fn) = 0;
  virtual int64_t size(Split split) const = 0;
};

/// The order of (seed, epoch) over n samples that cached and recomputed inputs share.
at::Tensor epoch_order(int64_t n, uint64_t seed, int64_t epoch);

/// `set` in order, in batches copied to `device`.
void for_each_batch_in_order(const data::ImageSet& set, int64_t batch_size,
                             const c10::Device& device, const BatchFn& fn);

/// Block 0: batches of the data set, augmented for training when the config says so.
std::unique_ptr<BlockInput> data_input(const data::DataSplits& data, const Config& config,
                                       const c10::Device& device);

}  // namespace neuroflux
