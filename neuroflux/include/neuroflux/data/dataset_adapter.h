// Any LibTorch data set as the drop-in trainer's ImageDataset.
//
// A LibTorch user already has a torch::data::datasets::Dataset of Example<> (an image tensor
// [C, H, W] and a label), possibly wrapped in .map(transforms::Normalize<>(...)). The trainer
// plans blocks and caches activations over a data set it can index at random, so the examples are
// gathered once, in batches, into one host-side ImageSet. The user's transforms run exactly once,
// at that point: what they return is what every epoch sees (random augmentation belongs in
// TrainerOptions::augment, which runs per epoch).
#pragma once

#include <torch/data/example.h>

#include <cstddef>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "neuroflux/data/image_set.h"

namespace neuroflux::data {

/// Reads the examples in [0, size) through `get_batch` into an ImageSet. Every image must have
/// the first one's shape and every label must be one integer in [0, num_classes) (num_classes 0:
/// one more than the largest label). A violation is a std::invalid_argument naming `what` and the
/// example's index.
using ExampleBatchReader =
    std::function<std::vector<torch::data::Example<>>(const std::vector<size_t>& indices)>;
ImageSet collect_examples(size_t size, const ExampleBatchReader& get_batch,
                          const std::string& what, int64_t num_classes = 0);

/// Copies `dataset` (anything with size() and get_batch(ArrayRef<size_t>) returning
/// std::vector<Example<>>: a torch::data::datasets::Dataset, or a MapDataset over one) into an
/// ImageDataset.
template <typename Dataset>
ImageDataset to_image_dataset(Dataset& dataset, const std::string& what = "dataset",
                              int64_t num_classes = 0) {
  if constexpr (std::is_same_v<std::decay_t<Dataset>, ImageDataset>) {
    return dataset;
  } else {
    const auto size = dataset.size();
    if (!size.has_value()) {
      throw std::invalid_argument(what + ": the data set has no size(); the trainer needs a "
                                         "random-access data set");
    }
    return ImageDataset(collect_examples(
        *size,
        [&dataset](const std::vector<size_t>& indices) {
          return dataset.get_batch(indices);
        },
        what, num_classes));
  }
}

}  // namespace neuroflux::data
