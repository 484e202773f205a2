#include "neuroflux/data/data_splits.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>

#include "neuroflux/data/image_folder.h"
#include "neuroflux/data/readers.h"
#include "neuroflux/data/synthetic.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/memory/memory_meter.h"

namespace neuroflux::data {
namespace {

constexpr const char* kFashionMnistRoot = "/usr/share/datasets/fashion-mnist";

// SplitMix64's finaliser: decorrelates seeds derived from one run seed (seed + 1 must not give
// a stream that overlaps seed's).
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::string fraction_text(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

void require_positive(int64_t value, const char* pointer) {
  if (value < 1) {
    throw ConfigError(std::string(pointer) + ": expected a positive integer, got " +
                      std::to_string(value));
  }
}

void require_non_negative(int64_t value, const char* pointer) {
  if (value < 0) {
    throw ConfigError(std::string(pointer) + ": expected a non-negative integer, got " +
                      std::to_string(value));
  }
}

std::string require_root(const DataConfig& config, const std::string& expected_files) {
  if (config.root.empty()) {
    throw ConfigError("/data/root: the " + config.name +
                      " data set has no default location; set data.root to the folder holding " +
                      expected_files);
  }
  return config.root;
}

ImageSet subset(const ImageSet& set, const at::Tensor& index) {
  UntrackedScope untracked;
  return {set.images.index_select(0, index), set.labels.index_select(0, index), set.num_classes};
}

// The first `limit` samples (0 = all), copied so the rest of the storage can be freed.
ImageSet prefix(ImageSet set, int64_t limit) {
  if (limit <= 0 || limit >= set.size()) return set;
  UntrackedScope untracked;
  return {set.images.narrow(0, 0, limit).clone(), set.labels.narrow(0, 0, limit).clone(),
          set.num_classes};
}

// The training file(s) and the test file(s) of a data set, before limits and the validation split.
struct RawSets {
  ImageSet train, test;
  int64_t skipped_images = 0;
};

// uint8 pixels to the float [0, 1] the other readers give, for the samples `index` picks.
ImageSet image_subset(const DecodedImageFolder& folder, const at::Tensor& index) {
  UntrackedScope untracked;
  return {folder.pixels.index_select(0, index).to(torch::kFloat32).div_(255.0),
          folder.labels.index_select(0, index), static_cast<int64_t>(folder.classes.size())};
}

RawSets load_image_folder(const DataConfig& config, uint64_t seed, const std::string& cache_dir) {
  DecodedImageFolder folder = decode_image_folder(image_folder_options(config, cache_dir));
  const int64_t n = folder.labels.size(0);
  at::Tensor train_index, test_index;
  {
    UntrackedScope untracked;
    if (folder.has_test_folder) {
      test_index = folder.test.nonzero().select(1, 0);
      train_index = folder.test.logical_not().nonzero().select(1, 0);
    } else {
      // Like the validation split below: a seeded choice of samples, each split kept in folder
      // order. Its own stream, so the test and validation choices are not correlated.
      const auto n_test = static_cast<int64_t>(std::llround(config.test_fraction * n));
      if (n_test < 1 || n_test >= n) {
        throw ConfigError("/data/test_fraction: " + fraction_text(config.test_fraction) + " of " +
                          std::to_string(n) + " images in " + config.root + " leaves " +
                          (n_test < 1 ? "none to test on" : "none to train on"));
      }
      auto gen = at::make_generator<at::CPUGeneratorImpl>(mix(seed ^ 0x696d677465737431ull));
      const auto order = torch::randperm(n, gen, torch::kInt64);
      test_index = std::get<0>(order.narrow(0, 0, n_test).sort());
      train_index = std::get<0>(order.narrow(0, n_test, n - n_test).sort());
    }
  }
  // Only when skip_bad_images dropped a whole side of a train/ + test/ folder.
  for (const auto& [index, side] :
       {std::pair{train_index, "train"}, std::pair{test_index, "test"}}) {
    if (index.numel() == 0)
      throw DataError(config.root + "/" + side + ": every image was skipped as unreadable");
  }
  RawSets raw{image_subset(folder, train_index), image_subset(folder, test_index), folder.skipped};
  return raw;
}

RawSets load_raw(const DataConfig& config, uint64_t seed, const std::string& cache_dir) {
  const auto& name = config.name;
  if (name == "fashion-mnist" || name == "mnist") {
    std::string root = config.root;
    if (name == "mnist") {
      root = require_root(config, "train-images-idx3-ubyte[.gz]");
    } else if (root.empty()) {
      root = kFashionMnistRoot;
    }
    return {read_mnist_like(root, true), read_mnist_like(root, false)};
  }
  if (name == "cifar10" || name == "cifar100") {
    const int classes = name == "cifar10" ? 10 : 100;
    const auto root =
        require_root(config, classes == 10 ? "data_batch_{1..5}.bin or cifar-10-batches-bin/"
                                           : "train.bin and test.bin or cifar-100-binary/");
    return {read_cifar(root, classes, true), read_cifar(root, classes, false)};
  }
  if (name == "image_folder") return load_image_folder(config, seed, cache_dir);
  if (name == "synthetic") {
    // "auto" (0): the sizes synthetic data has always had.
    const int64_t image_size = config.image_size == 0 ? 32 : config.image_size;
    const int64_t channels = config.channels == 0 ? 3 : config.channels;
    require_positive(image_size, "/data/image_size");
    require_positive(channels, "/data/channels");
    require_positive(config.train_size, "/data/train_size");
    require_positive(config.test_size, "/data/test_size");
    if (image_size < 4) {
      throw ConfigError("/data/image_size: expected at least 4 for synthetic data, got " +
                        std::to_string(image_size));
    }
    if (config.num_classes < 2) {
      throw ConfigError("/data/num_classes: expected at least 2, got " +
                        std::to_string(config.num_classes));
    }
    SyntheticOptions options;
    options.channels = channels;
    options.image_size = image_size;
    options.num_classes = config.num_classes;
    options.samples = config.train_size;
    options.seed = seed;
    auto train = make_synthetic(options);
    // A different stream for the test set, or it would repeat the training set's first samples.
    options.samples = config.test_size;
    options.seed = mix(seed ^ 0x7465737473657431ull);
    return {std::move(train), make_synthetic(options)};
  }
  throw ConfigError("/data/name: unknown data set \"" + name +
                    "\", expected fashion-mnist, mnist, cifar10, cifar100, synthetic or "
                    "image_folder");
}

}  // namespace

std::string run_data_cache_dir(const Config& config) {
  return config.output.dir.empty() ? "" : config.output.dir + "/data-cache";
}

DataSplits load_splits(const DataConfig& config, uint64_t seed, const std::string& cache_dir) {
  if (!(config.val_fraction >= 0.0 && config.val_fraction < 1.0)) {
    throw ConfigError("/data/val_fraction: expected a number in [0, 1), got " +
                      fraction_text(config.val_fraction));
  }
  require_non_negative(config.train_limit, "/data/train_limit");
  require_non_negative(config.test_limit, "/data/test_limit");

  RawSets raw = load_raw(config, seed, config.cache_dir.empty() ? cache_dir : config.cache_dir);
  ImageSet full_train = prefix(std::move(raw.train), config.train_limit);

  DataSplits splits;
  splits.skipped_images = raw.skipped_images;
  splits.test = prefix(std::move(raw.test), config.test_limit);
  splits.num_classes = full_train.num_classes;
  splits.channels = full_train.images.size(1);
  splits.height = full_train.images.size(2);
  splits.width = full_train.images.size(3);

  const int64_t n = full_train.size();
  const auto n_val = static_cast<int64_t>(std::llround(config.val_fraction * n));
  if (n_val >= n) {
    throw ConfigError("/data/val_fraction: holding out " + fraction_text(config.val_fraction) +
                      " of " + std::to_string(n) + " training samples leaves none to train on");
  }
  if (n_val == 0) {
    splits.train = std::move(full_train);
    UntrackedScope untracked;
    splits.val = {torch::empty({0, splits.channels, splits.height, splits.width}, torch::kFloat32),
                  torch::empty({0}, torch::kInt64), splits.num_classes};
  } else {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    UntrackedScope untracked;
    const auto order = torch::randperm(n, gen, torch::kInt64);
    // Sorted, so each split keeps the file's order: the split is a choice of samples, and the
    // sampler does the shuffling.
    const auto val_index = std::get<0>(order.narrow(0, 0, n_val).sort());
    const auto train_index = std::get<0>(order.narrow(0, n_val, n - n_val).sort());
    splits.val = subset(full_train, val_index);
    splits.train = subset(full_train, train_index);
    full_train = ImageSet{};
  }
  splits.val.num_classes = splits.num_classes;

  // Per-channel statistics of the training split only, so nothing about the held-out samples
  // leaks into training; std_mean accumulates in double on the CPU.
  const auto [std_t, mean_t] = torch::std_mean(splits.train.images, {0, 2, 3}, /*unbiased=*/false);
  const auto mean = mean_t.to(torch::kFloat64).contiguous();
  auto stddev = std_t.to(torch::kFloat64).contiguous();
  // A constant channel would divide by zero; leave its scale alone.
  stddev.masked_fill_(stddev < 1e-12, 1.0);
  splits.mean.assign(mean.data_ptr<double>(), mean.data_ptr<double>() + mean.numel());
  splits.stddev.assign(stddev.data_ptr<double>(), stddev.data_ptr<double>() + stddev.numel());
  const auto shift = mean.to(torch::kFloat32).view({1, -1, 1, 1});
  const auto scale = stddev.to(torch::kFloat32).view({1, -1, 1, 1});
  for (auto* set : {&splits.train, &splits.val, &splits.test}) {
    if (set->size() > 0) set->images.sub_(shift).div_(scale);
  }
  return splits;
}

int64_t augment_padding(int64_t height) { return height >= 32 ? 4 : 2; }

at::Tensor augment_batch(const at::Tensor& images, int64_t padding, at::Generator& generator) {
  TORCH_CHECK(images.dim() == 4, "augment_batch: expected images [N, C, H, W], got ",
              images.sizes());
  TORCH_CHECK(padding >= 0, "augment_batch: padding must be non-negative, got ", padding);
  const int64_t n = images.size(0), height = images.size(2), width = images.size(3);
  // All draws come first and in one order, so the result depends only on the generator's state.
  const auto offsets = torch::randint(0, 2 * padding + 1, {n, 2}, generator, torch::kInt64);
  const auto flips = torch::randint(0, 2, {n}, generator, torch::kInt64);
  if (n == 0) return images.clone();

  // Crop from the zero-padded image = shift by (dy - p, dx - p) with zero fill. A per-sample copy
  // of the overlapping rectangle keeps the temporaries to one sample, where an index gather over
  // the batch would need an int64 index larger than the batch itself.
  auto out = padding > 0 ? torch::zeros_like(images, at::MemoryFormat::Contiguous)
                         : images.clone(at::MemoryFormat::Contiguous);
  const auto off = offsets.accessor<int64_t, 2>();
  const auto flip = flips.accessor<int64_t, 1>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t dy = off[i][0] - padding, dx = off[i][1] - padding;
    // Source rows [y0, y1) land at out rows [y0 - dy, y1 - dy); the same for columns.
    const int64_t y0 = std::max<int64_t>(0, dy), y1 = std::min(height, height + dy);
    const int64_t x0 = std::max<int64_t>(0, dx), x1 = std::min(width, width + dx);
    auto target = out.select(0, i);
    if (padding > 0 && y1 > y0 && x1 > x0) {
      target.narrow(1, y0 - dy, y1 - y0)
          .narrow(2, x0 - dx, x1 - x0)
          .copy_(images.select(0, i).narrow(1, y0, y1 - y0).narrow(2, x0, x1 - x0));
    }
    if (flip[i] != 0) target.copy_(target.flip({2}));
  }
  return out;
}

BatchSampler::BatchSampler(const ImageSet& set, int64_t batch_size, bool shuffle, uint64_t seed,
                           int64_t epoch, bool drop_last)
    : set_(set), batch_size_(batch_size), drop_last_(drop_last) {
  if (batch_size < 1) {
    throw std::invalid_argument("BatchSampler: batch_size must be positive, got " +
                                std::to_string(batch_size));
  }
  // Index bookkeeping belongs with the data set, not the device working set.
  UntrackedScope untracked;
  if (shuffle) {
    // One stream per (seed, epoch): epoch e of a resumed run draws what it drew the first time.
    auto gen =
        at::make_generator<at::CPUGeneratorImpl>(mix(seed ^ mix(static_cast<uint64_t>(epoch))));
    order_ = torch::randperm(set.size(), gen, torch::kInt64);
  } else {
    order_ = torch::arange(set.size(), torch::kInt64);
  }
}

int64_t BatchSampler::num_batches() const {
  const int64_t n = order_.size(0);
  return drop_last_ ? n / batch_size_ : (n + batch_size_ - 1) / batch_size_;
}

std::pair<at::Tensor, at::Tensor> BatchSampler::batch(int64_t i) const {
  if (i < 0 || i >= num_batches()) {
    throw std::out_of_range("BatchSampler: batch " + std::to_string(i) + " of " +
                            std::to_string(num_batches()));
  }
  const int64_t start = i * batch_size_;
  const auto index = order_.narrow(0, start, std::min(batch_size_, order_.size(0) - start));
  return {set_.images.index_select(0, index), set_.labels.index_select(0, index)};
}

}  // namespace neuroflux::data
