// load_splits (limits, the seeded validation split, normalisation), augment_batch, BatchSampler
// and the torch::data dataset over an ImageSet.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <set>
#include <string>

#include "data/data_test_files.h"
#include "neuroflux/config/config.h"
#include "neuroflux/data/data_splits.h"
#include "neuroflux/data/image_set.h"
#include "neuroflux/data/synthetic.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/memory/memory_meter.h"

using namespace neuroflux;
using namespace neuroflux::data;
using Catch::Matchers::Contains;
namespace files = neuroflux::data::test;  // data_test_files.h

namespace {

DataConfig synthetic_config(int64_t train_size = 200, int64_t test_size = 50) {
  DataConfig config;
  config.name = "synthetic";
  config.image_size = 8;
  config.channels = 3;
  config.num_classes = 5;
  config.train_size = train_size;
  config.test_size = test_size;
  config.val_fraction = 0.2;
  return config;
}

// A set whose sample i is filled with the value i, so a gathered batch names its indices.
ImageSet indexed_set(int64_t n) {
  ImageSet set;
  set.images = torch::arange(n, torch::kFloat32).view({n, 1, 1, 1}).expand({n, 1, 2, 2}).clone();
  set.labels = torch::arange(n, torch::kInt64) % 3;
  set.num_classes = 3;
  return set;
}

std::vector<int64_t> ids(const torch::Tensor& images) {
  const auto first = images.select(1, 0).select(1, 0).select(1, 0).to(torch::kInt64).contiguous();
  return {first.data_ptr<int64_t>(), first.data_ptr<int64_t>() + first.numel()};
}

}  // namespace

TEST_CASE("load_splits sizes, determinism and disjointness", "[data][unit]") {
  const auto config = synthetic_config();
  const auto a = load_splits(config, 7);
  CHECK(a.train.size() == 160);
  CHECK(a.val.size() == 40);
  CHECK(a.test.size() == 50);
  CHECK(a.channels == 3);
  CHECK(a.height == 8);
  CHECK(a.width == 8);
  CHECK(a.num_classes == 5);
  CHECK(a.val.num_classes == 5);
  CHECK(a.test.num_classes == 5);

  const auto b = load_splits(config, 7);
  CHECK(torch::equal(a.train.images, b.train.images));
  CHECK(torch::equal(a.val.labels, b.val.labels));
  CHECK(torch::equal(a.test.images, b.test.images));
  const auto c = load_splits(config, 8);
  CHECK_FALSE(torch::equal(a.train.images, c.train.images));

  // Train and validation partition the training set: undo the normalisation and find each row.
  SyntheticOptions options;
  options.samples = 200;
  options.channels = 3;
  options.image_size = 8;
  options.num_classes = 5;
  options.seed = 7;
  const auto whole = make_synthetic(options).images;
  const auto mean = torch::tensor(a.mean, torch::kFloat64).view({1, 3, 1, 1});
  const auto stddev = torch::tensor(a.stddev, torch::kFloat64).view({1, 3, 1, 1});
  const auto unnormalise = [&](const torch::Tensor& x) {
    return (x.to(torch::kFloat64) * stddev + mean).to(torch::kFloat32);
  };
  std::set<int64_t> seen;
  for (const auto* split : {&a.train, &a.val}) {
    // The nearest row of the unsplit set; the round trip through normalisation costs a few ulps.
    // compute_mode 2: exact differences, not the matrix-product shortcut that loses digits.
    const auto [distance, row] =
        torch::cdist(unnormalise(split->images).flatten(1), whole.flatten(1), 2.0, 2).min(1);
    CHECK(distance.max().item<double>() < 1e-4);
    for (int64_t i = 0; i < row.size(0); ++i) seen.insert(row[i].item<int64_t>());
  }
  CHECK(seen.size() == 200);  // no row twice, none missing
}

TEST_CASE("load_splits applies train_limit before the split and test_limit", "[data][unit]") {
  auto config = synthetic_config(300, 80);
  config.train_limit = 100;
  config.test_limit = 30;
  config.val_fraction = 0.1;
  const auto splits = load_splits(config, 3);
  CHECK(splits.train.size() == 90);
  CHECK(splits.val.size() == 10);
  CHECK(splits.test.size() == 30);

  config.val_fraction = 0.0;
  const auto all = load_splits(config, 3);
  CHECK(all.train.size() == 100);
  CHECK(all.val.size() == 0);
  CHECK(all.val.images.sizes() == torch::IntArrayRef({0, 3, 8, 8}));
}

TEST_CASE("load_splits normalises with the training split's statistics", "[data][unit]") {
  const auto splits = load_splits(synthetic_config(400, 100), 11);
  const auto mean = splits.train.images.mean({0, 2, 3});
  const auto stddev = splits.train.images.std({0, 2, 3}, /*unbiased=*/false);
  for (int64_t c = 0; c < 3; ++c) {
    CHECK(mean[c].item<double>() == Approx(0.0).margin(1e-5));
    CHECK(stddev[c].item<double>() == Approx(1.0).epsilon(1e-4));
    CHECK(splits.stddev[c] > 0.0);
  }
  REQUIRE(splits.mean.size() == 3);
  // The held-out splits use the same transform: close to, not exactly, zero mean.
  CHECK(std::abs(splits.test.images.mean().item<double>()) < 0.2);
}

TEST_CASE("load_splits keeps the data set out of the tracked memory", "[data][unit]") {
  auto& meter = MemoryMeter::cpu();
  const int64_t before = meter.current();
  const auto splits = load_splits(synthetic_config(2000, 500), 1);
  CHECK(meter.current() - before < 64 * 1024);
}

TEST_CASE("load_splits reads IDX data sets from data.root", "[data][unit]") {
  files::TempDir dir;
  files::write_file(dir.file("train-images-idx3-ubyte"), files::idx_images(20, 6, 6));
  files::write_file(dir.file("train-labels-idx1-ubyte"), files::idx_labels(20));
  files::write_file(dir.file("t10k-images-idx3-ubyte.gz"),
                    files::gzip_stored(files::idx_images(8, 6, 6)));
  files::write_file(dir.file("t10k-labels-idx1-ubyte.gz"),
                    files::gzip_stored(files::idx_labels(8)));
  DataConfig config;
  config.name = "mnist";
  config.root = dir.path().string();
  config.val_fraction = 0.25;
  const auto splits = load_splits(config, 0);
  CHECK(splits.train.size() == 15);
  CHECK(splits.val.size() == 5);
  CHECK(splits.test.size() == 8);
  CHECK(splits.num_classes == 10);
  CHECK(splits.channels == 1);

  config.name = "fashion-mnist";
  CHECK(load_splits(config, 0).train.size() == 15);
}

TEST_CASE("load_splits rejects bad configuration by JSON path", "[data][unit]") {
  DataConfig config;
  SECTION("mnist has no default root") {
    config.name = "mnist";
    CHECK_THROWS_WITH(load_splits(config, 0), Contains("/data/root"));
    CHECK_THROWS_AS(load_splits(config, 0), ConfigError);
  }
  SECTION("cifar needs a root") {
    config.name = "cifar10";
    CHECK_THROWS_WITH(load_splits(config, 0), Contains("/data/root"));
  }
  SECTION("unknown name") {
    config.name = "imagenet";
    CHECK_THROWS_WITH(load_splits(config, 0), Contains("/data/name") && Contains("imagenet"));
  }
  SECTION("val_fraction out of range") {
    config = synthetic_config();
    config.val_fraction = 1.0;
    CHECK_THROWS_WITH(load_splits(config, 0), Contains("/data/val_fraction"));
  }
  SECTION("negative limit") {
    config = synthetic_config();
    config.train_limit = -1;
    CHECK_THROWS_WITH(load_splits(config, 0), Contains("/data/train_limit"));
  }
  SECTION("missing files are a DataError") {
    files::TempDir dir;
    config.name = "fashion-mnist";
    config.root = dir.path().string();
    CHECK_THROWS_AS(load_splits(config, 0), DataError);
  }
}

TEST_CASE("augment_batch crops and flips reproducibly", "[data][unit]") {
  const auto images = torch::rand({16, 3, 8, 8}, at::make_generator<at::CPUGeneratorImpl>(5));
  auto gen_a = at::make_generator<at::CPUGeneratorImpl>(123);
  auto gen_b = at::make_generator<at::CPUGeneratorImpl>(123);
  const auto original = images.clone();
  const auto a = augment_batch(images, 2, gen_a);
  const auto b = augment_batch(images, 2, gen_b);
  CHECK(a.sizes() == images.sizes());
  CHECK(torch::equal(a, b));
  CHECK(torch::equal(images, original));  // input untouched
  CHECK_FALSE(torch::equal(a, images));
  // The generator moved on: the next batch is augmented differently.
  CHECK_FALSE(torch::equal(augment_batch(images, 2, gen_a), a));

  // Each output is a shifted (by at most the padding), possibly mirrored copy of its input.
  for (int64_t i = 0; i < 16; ++i) {
    bool found = false;
    for (int flip = 0; flip < 2 && !found; ++flip) {
      const auto source = flip ? images[i].flip({2}) : images[i];
      const auto padded = torch::constant_pad_nd(source, {2, 2, 2, 2});
      for (int64_t dy = 0; dy <= 4 && !found; ++dy)
        for (int64_t dx = 0; dx <= 4 && !found; ++dx)
          found = torch::equal(padded.narrow(1, dy, 8).narrow(2, dx, 8), a[i]);
    }
    CHECK(found);
  }

  // Padding 0 only flips.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  const auto flipped = augment_batch(images, 0, gen);
  for (int64_t i = 0; i < 16; ++i) {
    CHECK((torch::equal(flipped[i], images[i]) || torch::equal(flipped[i], images[i].flip({2}))));
  }
}

TEST_CASE("BatchSampler covers every index once per epoch", "[data][unit]") {
  const auto set = indexed_set(103);
  const BatchSampler epoch0(set, 10, /*shuffle=*/true, /*seed=*/9, /*epoch=*/0);
  REQUIRE(epoch0.num_batches() == 11);
  std::vector<int64_t> order0;
  for (int64_t i = 0; i < epoch0.num_batches(); ++i) {
    const auto [images, labels] = epoch0.batch(i);
    CHECK(images.size(0) == (i < 10 ? 10 : 3));
    CHECK(torch::equal(labels, torch::tensor(ids(images)) % 3));
    for (auto id : ids(images)) order0.push_back(id);
  }
  CHECK(std::set<int64_t>(order0.begin(), order0.end()).size() == 103);

  std::vector<int64_t> again, order1;
  const BatchSampler epoch0_again(set, 10, true, 9, 0);
  const BatchSampler epoch1(set, 10, true, 9, 1);
  for (int64_t i = 0; i < 11; ++i) {
    for (auto id : ids(epoch0_again.batch(i).first)) again.push_back(id);
    for (auto id : ids(epoch1.batch(i).first)) order1.push_back(id);
  }
  CHECK(again == order0);
  CHECK(order1 != order0);
  CHECK(std::set<int64_t>(order1.begin(), order1.end()).size() == 103);

  const BatchSampler dropping(set, 10, true, 9, 0, /*drop_last=*/true);
  CHECK(dropping.num_batches() == 10);
  CHECK_THROWS_AS(dropping.batch(10), std::out_of_range);

  const BatchSampler in_order(set, 50, /*shuffle=*/false, 0, 0);
  CHECK(ids(in_order.batch(1).first)[0] == 50);
}

TEST_CASE("BatchSampler gathers into tracked memory", "[data][unit]") {
  ImageSet set;
  {
    UntrackedScope untracked;
    set = indexed_set(64);
  }
  auto& meter = MemoryMeter::cpu();
  const BatchSampler sampler(set, 32, true, 0, 0);
  const int64_t before = meter.current();
  const auto batch = sampler.batch(0);
  CHECK(meter.current() - before >=
        static_cast<int64_t>(batch.first.nbytes() + batch.second.nbytes()));
}

TEST_CASE("ImageDataset works with torch::data::make_data_loader", "[data][unit]") {
  for (int workers : {0, 2}) {
    auto dataset = ImageDataset(indexed_set(37)).map(torch::data::transforms::Stack<>());
    auto loader = torch::data::make_data_loader<torch::data::samplers::RandomSampler>(
        std::move(dataset), torch::data::DataLoaderOptions().batch_size(8).workers(workers));
    std::vector<int64_t> seen;
    for (auto& batch : *loader) {
      CHECK(batch.data.size(0) <= 8);
      CHECK(batch.data.sizes().slice(1) == torch::IntArrayRef({1, 2, 2}));
      CHECK(batch.target.size(0) == batch.data.size(0));
      for (auto id : ids(batch.data)) seen.push_back(id);
    }
    CHECK(std::set<int64_t>(seen.begin(), seen.end()).size() == 37);
    CHECK(seen.size() == 37);
  }
  ImageDataset plain(indexed_set(5));
  CHECK(plain.size().value() == 5);
  CHECK(plain.get(3).data[0][0][0].item<float>() == 3.0f);
  CHECK_THROWS_AS(plain.get(5), std::out_of_range);
}
