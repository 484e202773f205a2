#include "neuroflux/distributed/data_parallel.h"

#include <torch/torch.h>

namespace neuroflux {

namespace {

class ShardedInput final : public BlockInput {
 public:
  ShardedInput(std::unique_ptr<BlockInput> inner, int rank, int world)
      : inner_(std::move(inner)), rank_(rank), world_(world) {}

  void train_epoch(int64_t batch_size, int64_t epoch, const BatchFn& fn) override {
    inner_->train_epoch(batch_size * world_, epoch, [&](const at::Tensor& x, const at::Tensor& y) {
      const int64_t per = std::min(batch_size, x.size(0) / world_);
      if (per < 2) return;  // every rank sees the same global batch, so all skip it
      fn(x.narrow(0, rank_ * per, per), y.narrow(0, rank_ * per, per));
    });
  }

  void in_order(Split split, int64_t batch_size, const BatchFn& fn) override {
    inner_->in_order(split, batch_size, fn);
  }

  int64_t size(Split split) const override {
    return split == Split::kTrain ? inner_->size(split) / world_ : inner_->size(split);
  }

 private:
  std::unique_ptr<BlockInput> inner_;
  int rank_, world_;
};

}  // namespace

std::unique_ptr<BlockInput> sharded_input(std::unique_ptr<BlockInput> inner, int rank, int world) {
  return std::make_unique<ShardedInput>(std::move(inner), rank, world);
}

data::DataSplits train_shard(const data::DataSplits& data, int rank, int world) {
  data::DataSplits shard = data;
  const int64_t per = data.train.size() / world;
  // Views of the untracked data set: the shard costs no memory.
  shard.train.images = data.train.images.narrow(0, rank * per, per);
  shard.train.labels = data.train.labels.narrow(0, rank * per, per);
  return shard;
}

void broadcast_module(Communicator& comm, torch::nn::Module& module, int root) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) {
    at::Tensor t = p.detach();
    comm.broadcast(t, root);
  }
  for (auto& b : module.buffers()) comm.broadcast(b, root);
}

void average_buffers(Communicator& comm, torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& b : module.buffers()) {
    if (!b.is_floating_point()) continue;  // num_batches_tracked counts the same on every rank
    comm.all_reduce_sum(b);
    b.div_(comm.world_size());
  }
}

void check_same_checkpoint(Communicator& comm, int64_t step, const std::string& where) {
  const std::vector<int64_t> steps = comm.all_gather(step);
  for (size_t r = 1; r < steps.size(); ++r) {
    if (steps[r] == steps[0]) continue;
    auto name = [](int64_t s) { return s < 0 ? std::string("none") : "step " + std::to_string(s); };
    throw DataError(where + ": the ranks' checkpoints disagree (rank 0: " + name(steps[0]) +
                    ", rank " + std::to_string(r) + ": " + name(steps[r]) +
                    "); a rank died between two checkpoints: restart without --resume");
  }
}

void add_rank_fields(Report& report, Communicator& comm, const std::string& mode) {
  report.extra["world_size"] = comm.world_size();
  report.extra["distributed_mode"] = mode;
  const std::vector<int64_t> peaks = comm.all_gather(report.peak_memory_bytes);
  report.extra["rank_peak_memory_bytes"] = peaks;
  // The budget is per rank: the run's peak is its largest rank's.
  report.peak_memory_bytes = *std::max_element(peaks.begin(), peaks.end());
  // Milliseconds travel as integers; the report keeps seconds.
  std::vector<double> seconds;
  for (int64_t ms : comm.all_gather(static_cast<int64_t>(report.train_seconds * 1000)))
    seconds.push_back(static_cast<double>(ms) / 1000.0);
  report.extra["rank_train_seconds"] = seconds;
}

}  // namespace neuroflux
