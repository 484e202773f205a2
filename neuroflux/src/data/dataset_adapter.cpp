#include "neuroflux/data/dataset_adapter.h"

#include <torch/torch.h>

#include <algorithm>
#include <sstream>
#include <stdexcept>

#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/util/size_format.h"

namespace neuroflux::data {
namespace {

// Big enough that a MapDataset's per-batch overhead vanishes, small enough that one batch of
// user tensors beside the gathered set stays a small share of host memory.
constexpr size_t kCollectBatch = 256;

int64_t label_of(const at::Tensor& target, const std::string& what, size_t index) {
  if (!target.defined() || target.numel() != 1) {
    throw std::invalid_argument(what + ": example " + std::to_string(index) +
                                " has a label of shape " +
                                (target.defined() ? shape_string(target.sizes()) : "undefined") +
                                ", expected one class index");
  }
  if (at::isFloatingType(target.scalar_type())) {
    const double value = target.item<double>();
    if (value != static_cast<double>(static_cast<int64_t>(value))) {
      std::ostringstream text;
      text << what << ": example " << index << " has label " << value
           << ", expected a class index";
      throw std::invalid_argument(text.str());
    }
  }
  return target.item<int64_t>();
}

}  // namespace

ImageSet collect_examples(size_t size, const ExampleBatchReader& get_batch,
                          const std::string& what, int64_t num_classes) {
  if (size == 0) throw std::invalid_argument(what + ": the data set is empty");
  ImageSet set;
  std::vector<int64_t> sample_shape;
  int64_t largest_label = -1;
  std::vector<size_t> indices;
  for (size_t start = 0; start < size; start += kCollectBatch) {
    indices.clear();
    for (size_t i = start; i < std::min(size, start + kCollectBatch); ++i) indices.push_back(i);
    const auto batch = get_batch(indices);
    if (batch.size() != indices.size()) {
      throw std::invalid_argument(what + ": get_batch returned " + std::to_string(batch.size()) +
                                  " examples for " + std::to_string(indices.size()) + " indices");
    }
    for (size_t k = 0; k < batch.size(); ++k) {
      const size_t index = indices[k];
      const at::Tensor& image = batch[k].data;
      if (!image.defined() || image.dim() != 3) {
        throw std::invalid_argument(
            what + ": example " + std::to_string(index) + " has an image of shape " +
            (image.defined() ? shape_string(image.sizes()) : "undefined") +
            ", expected [channels, height, width]");
      }
      if (!set.images.defined()) {
        sample_shape = image.sizes().vec();
        std::vector<int64_t> shape{static_cast<int64_t>(size)};
        shape.insert(shape.end(), sample_shape.begin(), sample_shape.end());
        // The data set lives on the host, outside the device budget.
        UntrackedScope untracked;
        set.images = torch::empty(shape, torch::kFloat32);
        set.labels = torch::empty({static_cast<int64_t>(size)}, torch::kInt64);
      } else if (image.sizes() != at::IntArrayRef(sample_shape)) {
        throw std::invalid_argument(what + ": example " + std::to_string(index) +
                                    " has an image of shape " + shape_string(image.sizes()) +
                                    ", but example 0 has " + shape_string(sample_shape) +
                                    "; resize them to one shape first");
      }
      const int64_t label = label_of(batch[k].target, what, index);
      if (label < 0 || (num_classes > 0 && label >= num_classes)) {
        throw std::invalid_argument(what + ": example " + std::to_string(index) + " has label " +
                                    std::to_string(label) + ", expected 0.." +
                                    (num_classes > 0 ? std::to_string(num_classes - 1) : "N"));
      }
      largest_label = std::max(largest_label, label);
      const auto row = static_cast<int64_t>(index);
      set.images[row].copy_(image.detach().to(torch::kCPU, torch::kFloat32));
      set.labels.data_ptr<int64_t>()[row] = label;
    }
  }
  set.num_classes = num_classes > 0 ? num_classes : largest_label + 1;
  return set;
}

}  // namespace neuroflux::data
