#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <stdexcept>

#include "neuroflux/data/dataset_adapter.h"

using namespace neuroflux;

namespace {

// A user's data set, written the way torch::data::datasets::MNIST is.
class Digits : public torch::data::datasets::Dataset<Digits> {
 public:
  explicit Digits(int64_t count, std::vector<int64_t> shape = {1, 6, 5})
      : images_(torch::arange(count * 30, torch::kFloat32).reshape({count, 1, 6, 5})),
        targets_(torch::arange(count, torch::kInt64).remainder(3)),
        odd_shape_(std::move(shape)) {}

  torch::data::Example<> get(size_t index) override {
    const auto i = static_cast<int64_t>(index);
    // The last example may have another shape, to test the error.
    if (i == targets_.size(0) - 1 && odd_shape_ != std::vector<int64_t>{1, 6, 5})
      return {torch::zeros(odd_shape_), targets_[i]};
    return {images_[i], targets_[i]};
  }
  torch::optional<size_t> size() const override { return targets_.size(0); }

  torch::Tensor images_, targets_;
  std::vector<int64_t> odd_shape_;
};

class Labelled : public torch::data::datasets::Dataset<Labelled> {
 public:
  explicit Labelled(torch::Tensor label) : label_(std::move(label)) {}
  torch::data::Example<> get(size_t) override { return {torch::zeros({1, 2, 2}), label_}; }
  torch::optional<size_t> size() const override { return 4; }
  torch::Tensor label_;
};

}  // namespace

TEST_CASE("a LibTorch data set becomes an ImageDataset, every example in order",
          "[data][unit]") {
  Digits digits(600);  // more than one collecting batch
  const data::ImageDataset set = data::to_image_dataset(digits);
  REQUIRE(set.set().images.sizes() == at::IntArrayRef({600, 1, 6, 5}));
  CHECK(torch::equal(set.set().images, digits.images_));
  CHECK(torch::equal(set.set().labels, digits.targets_));
  CHECK(set.set().num_classes == 3);
  CHECK(data::to_image_dataset(digits, "train", 10).set().num_classes == 10);
}

TEST_CASE("a mapped data set is gathered after its transform", "[data][unit]") {
  auto normalised = Digits(40).map(torch::data::transforms::Normalize<>(10.0, 4.0));
  const data::ImageDataset set = data::to_image_dataset(normalised);
  CHECK(torch::allclose(set.set().images, (Digits(40).images_ - 10.0) / 4.0));
}

TEST_CASE("a bad example is an error naming the set and its index", "[data][unit]") {
  auto message_of = [](auto&& dataset, int64_t classes = 0) {
    try {
      data::to_image_dataset(dataset, "train", classes);
    } catch (const std::invalid_argument& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  Digits odd(10, {1, 7, 5});
  CHECK_THAT(message_of(odd), Catch::Contains("train: example 9 has an image of shape [1, 7, 5]") &&
                                   Catch::Contains("example 0 has [1, 6, 5]"));
  Digits flat(10, {30});
  CHECK_THAT(message_of(flat), Catch::Contains("example 9") && Catch::Contains("[channels"));
  CHECK_THAT(message_of(Digits(10), 2), Catch::Contains("example 2 has label 2, expected 0..1"));
  CHECK_THAT(message_of(Labelled(torch::tensor(1.5))),
             Catch::Contains("example 0 has label 1.5"));
  CHECK_THAT(message_of(Labelled(torch::tensor({1, 2}))),
             Catch::Contains("label of shape [2]"));
  CHECK_THAT(message_of(Labelled(torch::tensor(-1))), Catch::Contains("has label -1"));
  CHECK_THAT(message_of(Digits(0)), Catch::Contains("train: the data set is empty"));
  // A whole-number float label is a class index.
  Labelled whole(torch::tensor(2.0));
  CHECK(data::to_image_dataset(whole).set().labels[0].item<int64_t>() == 2);
}
