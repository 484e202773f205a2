// From a DataConfig to normalised train / validation / test sets.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "neuroflux/config/config.h"
#include "neuroflux/data/image_set.h"

namespace neuroflux::data {

struct DataSplits {
  ImageSet train;
  ImageSet val;
  ImageSet test;
  std::vector<double> mean;   ///< per-channel, measured on the training split
  std::vector<double> stddev;
  int64_t channels = 0, height = 0, width = 0, num_classes = 0;
  int64_t skipped_images = 0;  ///< image_folder: unreadable images left out (skip_bad_images)
};

/// Loads `config.name`, takes `train_limit` samples of the training file (a prefix), holds out
/// `val_fraction` of them by a permutation drawn from `seed`, and normalises all three splits
/// with the training split's per-channel mean and standard deviation. An image folder without
/// test/ first gives `test_fraction` of its images to the test split, by another stream of
/// `seed`. `cache_dir` is where image_folder keeps its decoded images when `config.cache_dir` is
/// "" (none at all when both are).
DataSplits load_splits(const DataConfig& config, uint64_t seed, const std::string& cache_dir = "");

/// The run's default for data.cache_dir: OUT/data-cache, or "" without an output directory.
std::string run_data_cache_dir(const Config& config);

/// Standard random crop (zero padding `padding`) and horizontal flip, batch-wise, drawn from
/// `generator`'s stream. Returns a new tensor; `images` is not changed.
at::Tensor augment_batch(const at::Tensor& images, int64_t padding, at::Generator& generator);

/// Padding of the random crop for an image of this height (4 for 32 px, 2 for 28 px).
int64_t augment_padding(int64_t height);

/// Iterates over a set in batches: a fresh permutation each epoch drawn from (seed, epoch), so a
/// resumed run sees exactly the batches an uninterrupted one would.
class BatchSampler {
 public:
  BatchSampler(const ImageSet& set, int64_t batch_size, bool shuffle, uint64_t seed,
               int64_t epoch, bool drop_last = false);
  int64_t num_batches() const;
  /// Batch `i` (images, labels); gathered with index_select into tracked memory: the current
  /// batch belongs to the device working set.
  std::pair<at::Tensor, at::Tensor> batch(int64_t i) const;

 private:
  const ImageSet& set_;
  int64_t batch_size_;
  bool drop_last_;
  at::Tensor order_;
};

}  // namespace neuroflux::data
