// The synthetic set: shapes, determinism by seed, balance, and that a small CNN can learn it.
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "neuroflux/data/synthetic.h"
#include "neuroflux/memory/memory_meter.h"

using namespace neuroflux::data;

TEST_CASE("make_synthetic has the requested shape and balanced labels", "[data][unit]") {
  SyntheticOptions options;
  SECTION("3 x 32 x 32, 10 classes") { options.samples = 200; }
  SECTION("1 x 28 x 28, 4 classes") {
    options.samples = 60;
    options.channels = 1;
    options.image_size = 28;
    options.num_classes = 4;
  }
  SECTION("5 x 9 x 9, 37 classes") {
    options.samples = 111;
    options.channels = 5;
    options.image_size = 9;
    options.num_classes = 37;
  }
  const auto set = make_synthetic(options);
  REQUIRE(set.images.sizes() == torch::IntArrayRef({options.samples, options.channels,
                                                    options.image_size, options.image_size}));
  REQUIRE(set.images.dtype() == torch::kFloat32);
  REQUIRE(set.labels.sizes() == torch::IntArrayRef({options.samples}));
  REQUIRE(set.labels.dtype() == torch::kInt64);
  REQUIRE(set.num_classes == options.num_classes);
  CHECK(torch::isfinite(set.images).all().item<bool>());
  const auto counts = torch::bincount(set.labels, {}, options.num_classes);
  CHECK(counts.max().item<int64_t>() - counts.min().item<int64_t>() <= 1);
}

TEST_CASE("make_synthetic is deterministic by seed", "[data][unit]") {
  SyntheticOptions options;
  options.samples = 64;
  options.seed = 42;
  const auto a = make_synthetic(options);
  const auto b = make_synthetic(options);
  CHECK(torch::equal(a.images, b.images));
  CHECK(torch::equal(a.labels, b.labels));
  options.seed = 43;
  const auto c = make_synthetic(options);
  CHECK_FALSE(torch::equal(a.images, c.images));
  CHECK_FALSE(torch::equal(a.labels, c.labels));
}

TEST_CASE("make_synthetic allocates untracked and rejects bad options", "[data][unit]") {
  auto& meter = neuroflux::MemoryMeter::cpu();
  const int64_t before = meter.current();
  SyntheticOptions options;
  options.samples = 256;  // 3 MiB of images
  const auto set = make_synthetic(options);
  CHECK(meter.current() - before < 4096);

  options.num_classes = 1;
  CHECK_THROWS_AS(make_synthetic(options), std::invalid_argument);
  options.num_classes = 10;
  options.channels = 0;
  CHECK_THROWS_AS(make_synthetic(options), std::invalid_argument);
}

TEST_CASE("make_synthetic is learnable but not trivial", "[data][unit]") {
  // A small CNN, two epochs: far above chance (10%), yet not a solved problem.
  torch::manual_seed(0);
  SyntheticOptions options;
  options.samples = 2048;
  options.image_size = 16;
  options.seed = 1;
  const auto train = make_synthetic(options);
  options.samples = 512;
  options.seed = 2;
  const auto test = make_synthetic(options);
  const auto standardise = [&](const torch::Tensor& x) {
    return (x - train.images.mean()) / train.images.std();
  };

  torch::nn::Sequential net(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 16, 3).padding(1)),
                            torch::nn::ReLU(), torch::nn::MaxPool2d(2),
                            torch::nn::Conv2d(torch::nn::Conv2dOptions(16, 32, 3).padding(1)),
                            torch::nn::ReLU(), torch::nn::AdaptiveAvgPool2d(1),
                            torch::nn::Flatten(), torch::nn::Linear(32, 10));
  torch::optim::Adam optimizer(net->parameters(), torch::optim::AdamOptions(3e-3));
  const auto x = standardise(train.images);
  for (int epoch = 0; epoch < 2; ++epoch) {
    const auto order = torch::randperm(train.size());
    for (int64_t start = 0; start < train.size(); start += 32) {
      const auto index = order.narrow(0, start, 32);
      const auto loss = torch::nn::functional::cross_entropy(net->forward(x.index_select(0, index)),
                                                             train.labels.index_select(0, index));
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
    }
  }
  torch::NoGradGuard no_grad;
  const auto accuracy = net->forward(standardise(test.images))
                            .argmax(1)
                            .eq(test.labels)
                            .to(torch::kFloat64)
                            .mean()
                            .item<double>();
  INFO("test accuracy after two epochs: " << accuracy);
  CHECK(accuracy > 0.4);
  CHECK(accuracy < 0.995);
}
