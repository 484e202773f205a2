#include "neuroflux/data/image_set.h"

#include <torch/torch.h>

#include <stdexcept>
#include <string>

namespace neuroflux::data {
namespace {

void check_index(size_t index, int64_t size) {
  if (static_cast<int64_t>(index) >= size || static_cast<int64_t>(index) < 0) {
    throw std::out_of_range("ImageDataset: index " + std::to_string(index) +
                            " is out of range for a set of " + std::to_string(size) + " samples");
  }
}

}  // namespace

torch::data::Example<> ImageDataset::get(size_t index) {
  check_index(index, set_.size());
  // Views: the collating transform (Stack) makes the one copy a batch needs.
  const auto i = static_cast<int64_t>(index);
  return {set_.images[i], set_.labels[i]};
}

std::vector<torch::data::Example<>> ImageDataset::get_batch(at::ArrayRef<size_t> indices) {
  const auto n = static_cast<int64_t>(indices.size());
  auto index = torch::empty({n}, torch::kInt64);
  auto* out = index.data_ptr<int64_t>();
  for (int64_t k = 0; k < n; ++k) {
    check_index(indices[k], set_.size());
    out[k] = static_cast<int64_t>(indices[k]);
  }
  // One gather per tensor; the examples are views into it.
  const auto images = set_.images.index_select(0, index);
  const auto labels = set_.labels.index_select(0, index);
  std::vector<torch::data::Example<>> batch;
  batch.reserve(indices.size());
  for (int64_t k = 0; k < n; ++k) batch.push_back({images[k], labels[k]});
  return batch;
}

}  // namespace neuroflux::data
