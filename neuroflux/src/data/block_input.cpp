#include "neuroflux/data/block_input.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ops/randperm.h>

#include "neuroflux/util/epoch_seed.h"

namespace neuroflux {

namespace {

class DataInput final : public BlockInput {
 public:
  DataInput(const data::DataSplits& data, const Config& config, const c10::Device& device)
      : data_(data), config_(config), device_(device) {}

  void train_epoch(int64_t batch_size, int64_t epoch, const BatchFn& fn) override {
    const auto seed = static_cast<uint64_t>(config_.seed);
    data::BatchSampler sampler(data_.train, batch_size, /*shuffle=*/true, seed, epoch);
    at::Generator generator =
        at::make_generator<at::CPUGeneratorImpl>(epoch_seed(seed, epoch, EpochStream::kAugment));
    const int64_t padding = data::augment_padding(data_.height);
    for (int64_t i = 0; i < sampler.num_batches(); ++i) {
      auto [x, y] = sampler.batch(i);
      if (config_.data.augment) x = data::augment_batch(x, padding, generator);
      fn(x.to(device_), y.to(device_));
    }
  }

  void in_order(Split split, int64_t batch_size, const BatchFn& fn) override {
    for_each_batch_in_order(split_of(data_, split), batch_size, device_, fn);
  }

  int64_t size(Split split) const override { return split_of(data_, split).size(); }

 private:
  const data::DataSplits& data_;
  const Config& config_;
  c10::Device device_;
};

}  // namespace

const char* split_name(Split split) {
  switch (split) {
    case Split::kTrain: return "train";
    case Split::kVal: return "val";
    case Split::kTest: return "test";
  }
  return "?";
}

const data::ImageSet& split_of(const data::DataSplits& data, Split split) {
  switch (split) {
    case Split::kTrain: return data.train;
    case Split::kVal: return data.val;
    default: return data.test;
  }
}

at::Tensor epoch_order(int64_t n, uint64_t seed, int64_t epoch) {
  at::Generator generator =
      at::make_generator<at::CPUGeneratorImpl>(epoch_seed(seed, epoch, EpochStream::kShuffle));
  return at::randperm(n, generator, at::TensorOptions().dtype(at::kLong));
}

void for_each_batch_in_order(const data::ImageSet& set, int64_t batch_size,
                             const c10::Device& device, const BatchFn& fn) {
  for (int64_t start = 0; start < set.size(); start += batch_size) {
    const int64_t len = std::min(batch_size, set.size() - start);
    // A copy, not a view: the batch is device working memory, like any gathered batch.
    fn(set.images.narrow(0, start, len).to(at::TensorOptions(device), false, true),
       set.labels.narrow(0, start, len).to(device));
  }
}

std::unique_ptr<BlockInput> data_input(const data::DataSplits& data, const Config& config,
                                       const c10::Device& device) {
  return std::make_unique<DataInput>(data, config, device);
}

}  // namespace neuroflux
