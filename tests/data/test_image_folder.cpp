// data.name = "image_folder": decoding (PNG exactly, JPEG within its loss), class order, grey and
// colour, resize + centre crop, the decoded cache (reused, rebuilt when corrupt or stale), the
// train/test and flat layouts, normalisation from the training split, and every refusal.
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "data/data_test_files.h"
#include "data/image_folder_test_files.h"
#include "neuroflux/config/config.h"
#include "neuroflux/data/data_splits.h"
#include "neuroflux/data/image_folder.h"
#include "neuroflux/util/atomic_file.h"
#include "neuroflux/util/errors.h"

using namespace neuroflux;
using namespace neuroflux::data;
using namespace neuroflux::data::test;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

ImageFolderOptions options_for(const fs::path& root, const std::string& cache_dir = "") {
  ImageFolderOptions options;
  options.root = root.string();
  options.cache_dir = cache_dir;
  return options;
}

// The planar [C, H, W] pixels a decoder should give for `image`.
torch::Tensor planar(const TestImage& image) {
  return torch::from_blob(const_cast<uint8_t*>(image.data.data()),
                          {image.height, image.width, image.channels}, torch::kUInt8)
      .permute({2, 0, 1})
      .clone();
}

// What an exception of type E says, or "" when none was thrown.
template <typename E, typename F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "";
}

// Two classes of `per_class` constant grey PNGs; image i of class c has value 10 * (4c + i) + 5.
void grey_classes(const fs::path& root, int per_class = 2, int size = 4) {
  for (int c = 0; c < 2; ++c)
    for (int i = 0; i < per_class; ++i)
      write_png(root / ("class" + std::to_string(c)) / ("img" + std::to_string(i) + ".png"),
                constant_image(size, size, 1, static_cast<uint8_t>(10 * (4 * c + i) + 5)));
}

DataConfig folder_config(const fs::path& root) {
  DataConfig config;
  config.name = "image_folder";
  config.root = root.string();
  config.val_fraction = 0.0;
  return config;
}

}  // namespace

TEST_CASE("image_folder: PNG pixels come back exactly, labels by class folder", "[data][unit]") {
  TempDir dir;
  const auto a0 = random_image(5, 4, 3, 1), a1 = random_image(5, 4, 3, 2);
  const auto b0 = random_image(5, 4, 3, 3);
  write_png(dir.path() / "a" / "0.png", a0);
  write_png(dir.path() / "a" / "1.png", a1);
  write_png(dir.path() / "b" / "0.png", b0);
  const auto folder = decode_image_folder(options_for(dir.path()));
  REQUIRE(folder.pixels.sizes() == torch::IntArrayRef({3, 3, 4, 5}));
  CHECK(folder.pixels.scalar_type() == torch::kUInt8);
  CHECK(torch::equal(folder.pixels[0], planar(a0)));
  CHECK(torch::equal(folder.pixels[1], planar(a1)));
  CHECK(torch::equal(folder.pixels[2], planar(b0)));
  CHECK(torch::equal(folder.labels, torch::tensor({0, 0, 1}, torch::kInt64)));
  CHECK(folder.classes == std::vector<std::string>{"a", "b"});
  CHECK_FALSE(folder.has_test_folder);
  CHECK_FALSE(folder.from_cache);
  CHECK(folder.skipped == 0);
}

TEST_CASE("image_folder: JPEG decodes within JPEG's loss", "[data][unit]") {
  TempDir dir;
  TestImage smooth{16, 16, 3, {}};
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 16; ++x)
      smooth.data.insert(smooth.data.end(),
                         {static_cast<uint8_t>(40 + 8 * x), static_cast<uint8_t>(30 + 10 * y),
                          static_cast<uint8_t>(200 - 4 * (x + y))});
  write_jpeg(dir.path() / "a" / "smooth.jpg", smooth, 95);
  write_jpeg(dir.path() / "b" / "flat.JPEG", colour_image(16, 16, 90, 160, 220), 95);
  const auto folder = decode_image_folder(options_for(dir.path()));
  REQUIRE(folder.pixels.sizes() == torch::IntArrayRef({2, 3, 16, 16}));
  const auto diff = (folder.pixels[0].to(torch::kInt32) - planar(smooth).to(torch::kInt32)).abs();
  CHECK(diff.max().item<int>() <= 12);
  CHECK(diff.to(torch::kFloat32).mean().item<float>() < 2.0f);
  const auto flat = folder.pixels[1].to(torch::kInt32);
  CHECK((flat - planar(colour_image(16, 16, 90, 160, 220)).to(torch::kInt32))
            .abs()
            .max()
            .item<int>() <= 3);
}

TEST_CASE("image_folder: classes in sorted folder-name order; other files are ignored",
          "[data][unit]") {
  TempDir dir;
  // Byte order, as Python's sorted(): upper case first.
  write_png(dir.path() / "zebra" / "z.png", constant_image(2, 2, 1, 30));
  write_png(dir.path() / "Apple" / "a.PNG", constant_image(2, 2, 1, 10));
  write_png(dir.path() / "mango" / "nested" / "m.png", constant_image(2, 2, 1, 20));
  write_file((dir.path() / "mango" / "notes.txt").string(), {1, 2, 3});
  write_file((dir.path() / "mango" / "._m.png").string(), {0, 0, 0});  // a macOS companion
  fs::create_directories(dir.path() / ".hidden_class");
  write_png(dir.path() / ".hidden_class" / "h.png", constant_image(2, 2, 1, 99));
  const auto folder = decode_image_folder(options_for(dir.path()));
  CHECK(folder.classes == std::vector<std::string>{"Apple", "mango", "zebra"});
  REQUIRE(folder.pixels.size(0) == 3);
  for (int64_t i = 0; i < 3; ++i) {
    CHECK(folder.labels[i].item<int64_t>() == i);
    CHECK(folder.pixels[i].max().item<uint8_t>() == 10 * (i + 1));
  }
}

TEST_CASE("image_folder: grey and colour give 3 channels, all grey 1, channels forces either",
          "[data][unit]") {
  TempDir mixed, grey;
  write_png(mixed.path() / "a" / "grey.png", constant_image(3, 3, 1, 77));
  write_png(mixed.path() / "b" / "rgba.png", [] {
    TestImage image{3, 3, 4, {}};
    for (int i = 0; i < 9; ++i) image.data.insert(image.data.end(), {200, 100, 50, 128});
    return image;
  }());
  auto folder = decode_image_folder(options_for(mixed.path()));
  REQUIRE(folder.pixels.size(1) == 3);
  CHECK(torch::equal(folder.pixels[0], torch::full({3, 3, 3}, 77, torch::kUInt8)));
  CHECK(torch::equal(folder.pixels[1][0], torch::full({3, 3}, 200, torch::kUInt8)));  // alpha
  CHECK(torch::equal(folder.pixels[1][2], torch::full({3, 3}, 50, torch::kUInt8)));   // dropped

  grey_classes(grey.path());
  CHECK(decode_image_folder(options_for(grey.path())).pixels.size(1) == 1);
  auto forced = options_for(grey.path());
  forced.channels = 3;
  CHECK(decode_image_folder(forced).pixels.size(1) == 3);

  // Forced grey: ITU-R 601 luma, as stb_image weighs it (77 R + 150 G + 29 B) / 256.
  auto luma = options_for(mixed.path());
  luma.channels = 1;
  folder = decode_image_folder(luma);
  REQUIRE(folder.pixels.size(1) == 1);
  const int expected = (77 * 200 + 150 * 100 + 29 * 50) >> 8;
  CHECK(std::abs(folder.pixels[1].max().item<uint8_t>() - expected) <= 1);
  CHECK(folder.pixels[0].max().item<uint8_t>() == 77);

  auto bad = options_for(grey.path());
  bad.channels = 2;
  CHECK_THAT(message_of<ConfigError>([&] { decode_image_folder(bad); }),
             Contains("/data/channels"));
}

TEST_CASE("image_folder: image_size resizes the shorter side, then crops the centre",
          "[data][unit]") {
  TempDir dir;
  // 24 wide, 12 high: red | green | blue thirds. The crop keeps the green middle.
  TestImage wide{24, 12, 3, {}};
  for (int y = 0; y < 12; ++y)
    for (int x = 0; x < 24; ++x)
      wide.data.insert(wide.data.end(), {static_cast<uint8_t>(x < 6 ? 255 : 0),
                                         static_cast<uint8_t>(x >= 6 && x < 18 ? 255 : 0),
                                         static_cast<uint8_t>(x >= 18 ? 255 : 0)});
  write_png(dir.path() / "a" / "wide.png", wide);
  write_png(dir.path() / "b" / "tall.png", colour_image(5, 9, 10, 20, 30));  // upscaled
  auto options = options_for(dir.path());
  options.image_size = 6;
  const auto folder = decode_image_folder(options);
  REQUIRE(folder.pixels.sizes() == torch::IntArrayRef({2, 3, 6, 6}));
  // Resized to 12 x 6, columns 3..8 kept: the middle four are pure green, the border ones mostly.
  const auto centre = folder.pixels[0].narrow(2, 1, 4).to(torch::kInt32);
  CHECK(centre[1].min().item<int>() >= 250);
  CHECK(centre[0].max().item<int>() <= 5);
  CHECK(centre[2].max().item<int>() <= 5);
  CHECK(folder.pixels[0][1].to(torch::kInt32).min().item<int>() >= 128);
  const auto tall = folder.pixels[1].to(torch::kInt32);
  CHECK((tall[0] - 10).abs().max().item<int>() <= 1);
  CHECK((tall[2] - 30).abs().max().item<int>() <= 1);
}

TEST_CASE("image_folder: images of differing sizes need image_size", "[data][unit]") {
  TempDir dir;
  write_png(dir.path() / "a" / "small.png", constant_image(4, 4, 1, 1));
  write_png(dir.path() / "b" / "large.png", constant_image(6, 5, 1, 2));
  const auto message =
      message_of<ConfigError>([&] { decode_image_folder(options_for(dir.path())); });
  CHECK_THAT(message, Contains("/data/image_size") && Contains("large.png") &&
                          Contains("small.png") && Contains("6x5"));
  auto options = options_for(dir.path());
  options.image_size = 4;
  CHECK(decode_image_folder(options).pixels.sizes() == torch::IntArrayRef({2, 1, 4, 4}));
}

TEST_CASE("image_folder: the decoded cache is reused, and rebuilt when stale or corrupt",
          "[data][unit]") {
  TempDir dir, cache;
  grey_classes(dir.path() / "images");
  const auto options = options_for(dir.path() / "images", cache.path().string());
  const auto first = decode_image_folder(options);
  CHECK_FALSE(first.from_cache);
  REQUIRE(fs::exists(first.cache_path));
  CHECK(fs::path(first.cache_path).parent_path() == cache.path());

  // Same name, size and time, bytes now garbage: only a load that decodes nothing succeeds.
  const auto image = dir.path() / "images" / "class0" / "img0.png";
  const auto stamp = fs::last_write_time(image);
  const std::string text = neuroflux::read_file(image.string());
  const Bytes original(text.begin(), text.end());
  write_file(image.string(), Bytes(original.size(), 0xAB));
  fs::last_write_time(image, stamp);
  const auto second = decode_image_folder(options);
  CHECK(second.from_cache);
  CHECK(torch::equal(second.pixels, first.pixels));
  CHECK(torch::equal(second.labels, first.labels));
  CHECK(second.classes == first.classes);
  write_file(image.string(), original);  // back as it was, so the sections below see one folder
  fs::last_write_time(image, stamp);

  SECTION("a corrupt cache is rebuilt, never trusted") {
    {
      std::fstream file(first.cache_path, std::ios::in | std::ios::out | std::ios::binary);
      file.seekp(-3, std::ios::end);
      file.put('\x7f');
    }
    const auto rebuilt = decode_image_folder(options);
    CHECK_FALSE(rebuilt.from_cache);
    CHECK(torch::equal(rebuilt.pixels, first.pixels));
    CHECK(decode_image_folder(options).from_cache);  // and written again, whole
  }
  SECTION("a truncated cache is rebuilt") {
    fs::resize_file(first.cache_path, fs::file_size(first.cache_path) - 7);
    CHECK_FALSE(decode_image_folder(options).from_cache);
    CHECK(decode_image_folder(options).from_cache);
  }
  SECTION("a changed folder is decoded again") {
    write_png(dir.path() / "images" / "class1" / "new.png", constant_image(4, 4, 1, 250));
    const auto changed = decode_image_folder(options);
    CHECK_FALSE(changed.from_cache);
    CHECK(changed.pixels.size(0) == first.pixels.size(0) + 1);
  }
  SECTION("other decode options use another cache file") {
    auto resized = options;
    resized.image_size = 2;
    const auto other = decode_image_folder(resized);
    CHECK_FALSE(other.from_cache);
    CHECK(other.cache_path != first.cache_path);
    CHECK(decode_image_folder(options).from_cache);
  }
}

TEST_CASE("image_folder: train/ and test/ folders, or a seeded flat split", "[data][unit]") {
  TempDir paired, flat;
  grey_classes(paired.path() / "train", 3);
  write_png(paired.path() / "test" / "class0" / "t.png", constant_image(4, 4, 1, 200));
  write_png(paired.path() / "test" / "class1" / "t.png", constant_image(4, 4, 1, 210));
  const auto folder = decode_image_folder(options_for(paired.path()));
  CHECK(folder.has_test_folder);
  CHECK(torch::equal(folder.test, torch::tensor({0, 0, 0, 0, 0, 0, 1, 1}).to(torch::kBool)));
  const auto splits = load_splits(folder_config(paired.path()), 3);
  CHECK(splits.train.size() == 6);
  CHECK(splits.test.size() == 2);
  CHECK(splits.num_classes == 2);
  CHECK(torch::equal(splits.test.labels, torch::tensor({0, 1}, torch::kInt64)));

  // Flat: ten images of distinct values; test_fraction 0.2 takes two, by seed.
  for (int i = 0; i < 10; ++i)
    write_png(flat.path() / (i < 5 ? "a" : "b") / (std::to_string(i) + ".png"),
              constant_image(2, 2, 1, static_cast<uint8_t>(20 * i + 10)));
  auto config = folder_config(flat.path());
  config.test_fraction = 0.2;
  // Which images a split holds: their pixel values, normalisation undone.
  const auto values = [](const DataSplits& splits, const ImageSet& set) {
    std::set<int> out;
    const auto firsts = set.images.select(1, 0).select(1, 0).select(1, 0).contiguous();
    for (int64_t i = 0; i < set.size(); ++i) {
      const double raw = firsts[i].item<float>() * splits.stddev[0] + splits.mean[0];
      out.insert(static_cast<int>(std::lround(raw * 255.0)));
    }
    return out;
  };
  const auto a = load_splits(config, 1), again = load_splits(config, 1);
  CHECK(a.test.size() == 2);
  CHECK(a.train.size() == 8);
  CHECK(values(a, a.test) == values(again, again.test));
  std::set<int> all = values(a, a.train);
  for (int v : values(a, a.test)) CHECK(all.insert(v).second);  // disjoint
  CHECK(all.size() == 10);
  CHECK(*all.begin() == 10);
  bool another_choice = false;
  for (uint64_t seed = 2; seed < 8 && !another_choice; ++seed) {
    const auto other = load_splits(config, seed);
    another_choice = values(other, other.test) != values(a, a.test);
  }
  CHECK(another_choice);

  config.test_fraction = 0.01;
  CHECK_THAT(message_of<ConfigError>([&] { load_splits(config, 1); }),
             Contains("/data/test_fraction"));
}

TEST_CASE("image_folder: mean and std come from the training split only", "[data][unit]") {
  TempDir dir;
  // Train: class 0 all 50, class 1 all 150 -> mean 100, std 50 (of 255). Test: all 250.
  for (int i = 0; i < 2; ++i) {
    write_png(dir.path() / "train" / "c0" / (std::to_string(i) + ".png"),
              constant_image(2, 2, 1, 50));
    write_png(dir.path() / "train" / "c1" / (std::to_string(i) + ".png"),
              constant_image(2, 2, 1, 150));
  }
  write_png(dir.path() / "test" / "c0" / "t.png", constant_image(2, 2, 1, 250));
  write_png(dir.path() / "test" / "c1" / "t.png", constant_image(2, 2, 1, 250));
  const auto splits = load_splits(folder_config(dir.path()), 0);
  REQUIRE(splits.mean.size() == 1);
  CHECK(splits.mean[0] == Approx(100.0 / 255.0));
  CHECK(splits.stddev[0] == Approx(50.0 / 255.0));
  CHECK(splits.test.images.min().item<float>() == Approx(3.0f));
  CHECK(splits.test.images.max().item<float>() == Approx(3.0f));
}

TEST_CASE("image_folder: an unreadable image names the file (exit 3) or is skipped",
          "[data][unit]") {
  TempDir dir, cache;
  grey_classes(dir.path(), 3);
  const auto broken = dir.path() / "class1" / "broken.png";
  write_file(broken.string(), {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0});
  // A real PNG cut in half: the header reads, the pixels do not.
  write_png(dir.path() / "class0" / "whole.png", random_image(16, 16, 3, 9));
  const auto cut = dir.path() / "class0" / "cut.png";
  fs::copy_file(dir.path() / "class0" / "whole.png", cut);
  fs::resize_file(cut, fs::file_size(cut) / 2);
  fs::remove(dir.path() / "class0" / "whole.png");

  try {
    decode_image_folder(options_for(dir.path()));
    FAIL("a corrupt image was accepted");
  } catch (const DataError& e) {
    CHECK(e.code() == ExitCode::kBadData);
    CHECK_THAT(std::string(e.what()), Contains(cut.string()));
  }
  auto options = options_for(dir.path(), cache.path().string());
  options.skip_bad_images = true;
  const auto folder = decode_image_folder(options);
  CHECK(folder.skipped == 2);
  CHECK(folder.pixels.size(0) == 6);
  CHECK(decode_image_folder(options).skipped == 2);  // the cache remembers
  // Without skip_bad_images, a cache that left images out is not used: the error comes back.
  options.skip_bad_images = false;
  CHECK_THAT(message_of<DataError>([&] { decode_image_folder(options); }), Contains("cut.png"));

  auto config = folder_config(dir.path());
  config.skip_bad_images = true;
  config.test_fraction = 0.5;
  CHECK(load_splits(config, 0).skipped_images == 2);
}

TEST_CASE("image_folder: layout errors name the folder (exit 2)", "[data][unit]") {
  TempDir dir;
  const auto error_of = [](const fs::path& root) {
    try {
      decode_image_folder(options_for(root));
    } catch (const ConfigError& e) {
      CHECK(e.code() == ExitCode::kBadInput);
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK_THAT(error_of(dir.path() / "missing"), Contains("/data/root") && Contains("missing"));
  CHECK_THAT(error_of(""), Contains("/data/root"));

  const auto one = dir.path() / "one";
  write_png(one / "only" / "x.png", constant_image(2, 2, 1, 1));
  CHECK_THAT(error_of(one),
             Contains("/data/root") && Contains(one.string()) && Contains("1 class folder (only)"));

  const auto empty = dir.path() / "empty";
  write_png(empty / "full" / "x.png", constant_image(2, 2, 1, 1));
  fs::create_directories(empty / "hollow");
  write_file((empty / "hollow" / "readme.txt").string(), {1});
  CHECK_THAT(error_of(empty), Contains((empty / "hollow").string()) && Contains("no .jpg"));

  const auto unpaired = dir.path() / "unpaired";
  grey_classes(unpaired / "train");
  CHECK_THAT(error_of(unpaired), Contains("has train/ but no test/"));
  grey_classes(unpaired / "test");
  fs::rename(unpaired / "test" / "class1", unpaired / "test" / "other");
  CHECK_THAT(error_of(unpaired), Contains((unpaired / "test").string()) &&
                                     Contains("only in train/: class1") &&
                                     Contains("only in test/: other"));
}
