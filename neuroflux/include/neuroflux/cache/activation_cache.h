// ActivationCache: the outputs of a trained block over a whole split, kept so later blocks never
// re-run it (docs/architecture.md, "How a run flows"). Lives outside the device budget: untracked host memory, or a
// memory-mapped file on disk. A disk cache carries a header (shape, dtype, sample count, producer
// key, checksum); a stale (other key) or corrupt cache is detected and refused, never used.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace neuroflux {

struct CacheOptions {
  std::string where = "host";          ///< host | disk
  at::ScalarType dtype = at::kHalf;    ///< storage dtype: kFloat or kHalf
  std::string path;                    ///< disk: the cache file (written atomically)
};

class ActivationCache {
 public:
  /// An empty, writable cache for `count` samples of per-sample `sample_shape`. `key` identifies
  /// what produced it (config and weights); open() refuses a file with another key.
  static std::shared_ptr<ActivationCache> create(const CacheOptions& options,
                                                 std::vector<int64_t> sample_shape,
                                                 int64_t count, uint64_t key);
  /// Opens a finished disk cache, checking magic, header, size, key and checksum; a DataError
  /// naming the file and the problem otherwise.
  static std::shared_ptr<ActivationCache> open(const std::string& path,
                                               const std::vector<int64_t>& sample_shape,
                                               int64_t count, uint64_t key);

  ~ActivationCache();

  /// Stores `batch` ([b, sample_shape...], any floating dtype, any device) at samples
  /// [offset, offset + b).
  void write(int64_t offset, const at::Tensor& batch);
  /// After the last write: computes the checksum and (disk) writes the header and renames the
  /// file into place. Reads before finish() are refused.
  void finish();

  /// Samples `indices` as float32 [n, sample_shape...] in ordinary (tracked) memory: a batch on
  /// the device side of the budget.
  at::Tensor gather(const at::Tensor& indices) const;
  /// Samples [start, start + length) as float32.
  at::Tensor slice(int64_t start, int64_t length) const;

  int64_t count() const { return count_; }
  const std::vector<int64_t>& sample_shape() const { return sample_shape_; }
  int64_t bytes() const;               ///< stored bytes (data only)
  at::ScalarType dtype() const { return dtype_; }
  const std::string& where() const { return where_; }

 private:
  ActivationCache() = default;
  struct Storage;
  std::unique_ptr<Storage> storage_;
  std::vector<int64_t> sample_shape_;
  int64_t count_ = 0;
  at::ScalarType dtype_ = at::kHalf;
  std::string where_;
  uint64_t key_ = 0;
  bool finished_ = false;
};

/// Batches of (cached inputs, labels) in a shuffled order drawn from (seed, epoch), gathered by a
/// background thread one batch ahead so reading overlaps training.
class CacheBatchLoader {
 public:
  CacheBatchLoader(std::shared_ptr<const ActivationCache> cache, at::Tensor labels,
                   int64_t batch_size, bool shuffle, uint64_t seed, int64_t epoch);
  ~CacheBatchLoader();

  int64_t num_batches() const;
  /// The next batch; false after the last one.
  bool next(at::Tensor& inputs, at::Tensor& labels);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace neuroflux
