// Data-parallel gradient averaging: every parameter's gradient is copied into a bucket as
// backward produces it, and a full bucket is all-reduced at once (asynchronously, while backward
// goes on with earlier layers), as DDP does. finish() waits and leaves the average over the ranks
// in each parameter's .grad, so the optimizer step is the same on every rank.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "neuroflux/distributed/communicator.h"

namespace neuroflux {

class GradReducer {
 public:
  /// Buckets of about `bucket_bytes` over `params` taken in reverse (the order in which backward
  /// produces their gradients). Hooks stay on the parameters until the reducer is destroyed.
  GradReducer(std::shared_ptr<Communicator> comm, std::vector<at::Tensor> params,
              int64_t bucket_bytes);
  ~GradReducer();
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  /// Gradients produced from now on (one backward) are reduced; outside arm()..finish() the hooks
  /// do nothing, so trial steps and profiling stay local.
  void arm();
  /// Starts the buckets backward left incomplete (parameters without a gradient count as zero),
  /// waits for all, writes the averages into .grad and frees the bucket buffers.
  void finish();

  int64_t buckets() const { return static_cast<int64_t>(buckets_.size()); }

 private:
  struct Bucket;
  void on_grad(size_t param, const at::Tensor& grad);
  void launch_ready();
  at::Tensor& buffer(Bucket& bucket);

  std::shared_ptr<Communicator> comm_;
  std::vector<at::Tensor> params_;
  std::vector<unsigned> hooks_;
  std::vector<std::unique_ptr<Bucket>> buckets_;
  std::vector<std::pair<size_t, int64_t>> place_;  ///< param -> (bucket, offset)
  size_t next_launch_ = 0;
  bool armed_ = false;
};

}  // namespace neuroflux
