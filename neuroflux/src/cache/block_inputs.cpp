#include "neuroflux/cache/block_inputs.h"

#include <torch/torch.h>

namespace neuroflux {

namespace {

class CacheInput final : public BlockInput {
 public:
  CacheInput(std::array<std::shared_ptr<const ActivationCache>, 3> caches,
             const data::DataSplits& data, const Config& config, const c10::Device& device)
      : caches_(std::move(caches)), data_(data), config_(config), device_(device) {}

  void train_epoch(int64_t batch_size, int64_t epoch, const BatchFn& fn) override {
    CacheBatchLoader loader(caches_[0], data_.train.labels, batch_size, /*shuffle=*/true,
                            static_cast<uint64_t>(config_.seed), epoch);
    at::Tensor x, y;
    while (loader.next(x, y)) fn(x.to(device_), y.to(device_));
  }

  void in_order(Split split, int64_t batch_size, const BatchFn& fn) override {
    const auto& cache = caches_[static_cast<int>(split)];
    const auto& labels = split_of(data_, split).labels;
    for (int64_t start = 0; start < cache->count(); start += batch_size) {
      const int64_t len = std::min(batch_size, cache->count() - start);
      fn(cache->slice(start, len).to(device_), labels.narrow(0, start, len).to(device_));
    }
  }

  int64_t size(Split split) const override { return caches_[static_cast<int>(split)]->count(); }

 private:
  std::array<std::shared_ptr<const ActivationCache>, 3> caches_;
  const data::DataSplits& data_;
  const Config& config_;
  c10::Device device_;
};

class RecomputeInput final : public BlockInput {
 public:
  RecomputeInput(const data::DataSplits& data, const Config& config, LocalModel model,
                 int64_t first, const c10::Device& device)
      : data_(data), config_(config), model_(std::move(model)), first_(first), device_(device) {}

  void train_epoch(int64_t batch_size, int64_t epoch, const BatchFn& fn) override {
    const at::Tensor order = epoch_order(data_.train.size(), static_cast<uint64_t>(config_.seed), epoch);
    for (int64_t start = 0; start < order.size(0); start += batch_size) {
      const at::Tensor idx = order.narrow(0, start, std::min(batch_size, order.size(0) - start));
      fn(frozen(data_.train.images.index_select(0, idx).to(device_)),
         data_.train.labels.index_select(0, idx).to(device_));
    }
  }

  void in_order(Split split, int64_t batch_size, const BatchFn& fn) override {
    for_each_batch_in_order(split_of(data_, split), batch_size, device_,
                    [&](const at::Tensor& x, const at::Tensor& y) { fn(frozen(x), y); });
  }

  int64_t size(Split split) const override { return split_of(data_, split).size(); }

 private:
  at::Tensor frozen(const at::Tensor& x) {
    torch::NoGradGuard no_grad;
    for (int64_t i = 0; i < first_; ++i) model_->chain()->unit(i)->eval();
    return model_->chain()->forward_units(x, 0, first_);
  }

  const data::DataSplits& data_;
  const Config& config_;
  LocalModel model_;
  int64_t first_;
  c10::Device device_;
};

}  // namespace

std::unique_ptr<BlockInput> cache_input(std::shared_ptr<const ActivationCache> train,
                                        std::shared_ptr<const ActivationCache> val,
                                        std::shared_ptr<const ActivationCache> test,
                                        const data::DataSplits& data, const Config& config,
                                        const c10::Device& device) {
  return std::make_unique<CacheInput>(
      std::array<std::shared_ptr<const ActivationCache>, 3>{std::move(train), std::move(val),
                                                            std::move(test)},
      data, config, device);
}

std::unique_ptr<BlockInput> recompute_input(const data::DataSplits& data, const Config& config,
                                            LocalModel model, int64_t first,
                                            const c10::Device& device) {
  return std::make_unique<RecomputeInput>(data, config, std::move(model), first, device);
}

SplitCaches write_block_caches(LocalModel& model, BlockInput& input, int64_t first, int64_t last,
                               int64_t batch_size, const CacheOptions& options,
                               const std::function<std::string(Split)>& path, uint64_t key) {
  torch::NoGradGuard no_grad;
  for (int64_t i = first; i <= last; ++i) model->chain()->unit(i)->eval();
  const std::vector<int64_t> shape = model->chain()->output_shape(first <= last ? last : first - 1);
  SplitCaches caches;
  for (Split split : {Split::kTrain, Split::kVal, Split::kTest}) {
    CacheOptions split_options = options;
    split_options.path = path(split);
    auto cache = ActivationCache::create(split_options, shape, input.size(split), key);
    int64_t offset = 0;
    input.in_order(split, batch_size, [&](const at::Tensor& x, const at::Tensor&) {
      cache->write(offset, first <= last ? model->chain()->forward_units(x, first, last + 1) : x);
      offset += x.size(0);
    });
    cache->finish();
    caches[static_cast<int>(split)] = cache;
  }
  return caches;
}

}  // namespace neuroflux
