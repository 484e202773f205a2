#include "neuroflux/data/block_input.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ops/randperm.h>

#include "neuroflux/util/epoch_seed.h"

namespace neuroflux {

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

}  // namespace neuroflux
