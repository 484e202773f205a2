#include "neuroflux/distributed/grad_reducer.h"

#include <torch/torch.h>

namespace neuroflux {

struct GradReducer::Bucket {
  std::vector<size_t> params;
  int64_t numel = 0;
  int64_t ready = 0;
  at::Tensor flat;   ///< allocated on the bucket's first gradient, freed by finish()
  std::unique_ptr<PendingOp> op;
};

GradReducer::GradReducer(std::shared_ptr<Communicator> comm, std::vector<at::Tensor> params,
                         int64_t bucket_bytes)
    : comm_(std::move(comm)), params_(std::move(params)) {
  place_.resize(params_.size());
  for (size_t k = params_.size(); k-- > 0;) {
    const at::Tensor& p = params_[k];
    if (buckets_.empty() || buckets_.back()->numel * 4 >= bucket_bytes)
      buckets_.push_back(std::make_unique<Bucket>());
    Bucket& b = *buckets_.back();
    place_[k] = {buckets_.size() - 1, b.numel};
    b.params.push_back(k);
    b.numel += p.numel();
  }
  for (size_t k = 0; k < params_.size(); ++k) {
    TORCH_CHECK(params_[k].scalar_type() == at::kFloat, "GradReducer: float32 parameters only");
    hooks_.push_back(params_[k].register_hook([this, k](const at::Tensor& g) { on_grad(k, g); }));
  }
}

GradReducer::~GradReducer() {
  for (size_t k = 0; k < params_.size(); ++k) params_[k].remove_hook(hooks_[k]);
}

void GradReducer::arm() {
  armed_ = true;
  next_launch_ = 0;
  for (auto& b : buckets_) b->ready = 0;
}

at::Tensor& GradReducer::buffer(Bucket& bucket) {
  if (!bucket.flat.defined())
    bucket.flat = torch::zeros({bucket.numel}, params_[bucket.params.front()].options());
  return bucket.flat;
}

void GradReducer::on_grad(size_t param, const at::Tensor& grad) {
  if (!armed_) return;
  auto [index, offset] = place_[param];
  Bucket& b = *buckets_[index];
  buffer(b).narrow(0, offset, grad.numel()).copy_(grad.reshape({-1}));
  ++b.ready;
  launch_ready();
}

void GradReducer::launch_ready() {
  // Buckets start in index order on every rank: Gloo matches collectives by their order.
  while (next_launch_ < buckets_.size() &&
         buckets_[next_launch_]->ready == static_cast<int64_t>(buckets_[next_launch_]->params.size())) {
    Bucket& b = *buckets_[next_launch_++];
    b.op = comm_->all_reduce_sum_async(b.flat);
  }
}

void GradReducer::finish() {
  if (!armed_) return;
  for (size_t i = next_launch_; i < buckets_.size(); ++i) {
    Bucket& b = *buckets_[i];
    buffer(b);
    b.ready = static_cast<int64_t>(b.params.size());
  }
  launch_ready();
  armed_ = false;
  const double scale = 1.0 / comm_->world_size();
  torch::NoGradGuard no_grad;
  for (auto& bucket : buckets_) {
    Bucket& b = *bucket;
    b.op->wait();
    b.op.reset();
    b.flat.mul_(scale);
    for (size_t k : b.params) {
      at::Tensor& p = params_[k];
      const at::Tensor average = b.flat.narrow(0, place_[k].second, p.numel()).view(p.sizes());
      if (p.mutable_grad().defined())
        p.mutable_grad().copy_(average);
      else
        p.mutable_grad() = average.clone();
    }
    b.flat = at::Tensor();
  }
}

}  // namespace neuroflux
