// An in-memory labelled image set and the torch::data dataset over it.
#pragma once

#include <torch/data/datasets/base.h>
#include <torch/data/example.h>

#include <cstdint>
#include <vector>

namespace neuroflux::data {

/// Images as float32 [N, C, H, W] (already normalised once the split is made) and labels as
/// int64 [N]. The storage is allocated untracked (see UntrackedScope): the data set lives on the
/// host, outside the device budget.
struct ImageSet {
  at::Tensor images;
  at::Tensor labels;
  int64_t num_classes = 0;

  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

/// A torch::data dataset over an ImageSet, usable with torch::data::make_data_loader. get_batch
/// is overridden to gather a whole batch with one index_select instead of N stacks.
class ImageDataset : public torch::data::datasets::Dataset<ImageDataset> {
 public:
  explicit ImageDataset(ImageSet set) : set_(std::move(set)) {}

  torch::data::Example<> get(size_t index) override;
  std::vector<torch::data::Example<>> get_batch(at::ArrayRef<size_t> indices) override;
  c10::optional<size_t> size() const override { return static_cast<size_t>(set_.size()); }

  const ImageSet& set() const { return set_; }

 private:
  ImageSet set_;
};

}  // namespace neuroflux::data
