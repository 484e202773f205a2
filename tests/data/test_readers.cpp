// The IDX and CIFAR readers on small files written here: good ones (plain and gzip'd) and ones
// broken in each way the readers must diagnose.
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <functional>
#include <string>

#include "data/data_test_files.h"
#include "neuroflux/data/readers.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/memory/memory_meter.h"

using neuroflux::DataError;
using namespace neuroflux::data;
using namespace neuroflux::data::test;
using Catch::Matchers::Contains;

namespace {

// The DataError message `f` throws; fails the test when it throws nothing or something else.
std::string data_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const DataError& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("expected a DataError, got: " << e.what());
  }
  FAIL("expected a DataError, nothing was thrown");
  return "";
}

// Image i as the reader must return it.
torch::Tensor expected_image(int64_t i, int64_t h, int64_t w) {
  auto t = torch::empty({1, h, w});
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) t[0][y][x] = pixel(i, y, x) / 255.0f;
  return t;
}

void check_idx_set(const ImageSet& set, int64_t n, int64_t h, int64_t w) {
  REQUIRE(set.size() == n);
  REQUIRE(set.num_classes == 10);
  REQUIRE(set.images.sizes() == torch::IntArrayRef({n, 1, h, w}));
  REQUIRE(set.images.dtype() == torch::kFloat32);
  REQUIRE(set.labels.dtype() == torch::kInt64);
  for (int64_t i = 0; i < n; ++i) {
    CHECK(set.labels[i].item<int64_t>() == label_of(i));
    CHECK(torch::allclose(set.images[i], expected_image(i, h, w)));
  }
}

}  // namespace

TEST_CASE("read_idx reads plain and gzip'd IDX files", "[data][unit]") {
  TempDir dir;
  const auto images = idx_images(7, 5, 4);
  const auto labels = idx_labels(7);

  SECTION("plain") {
    write_file(dir.file("images"), images);
    write_file(dir.file("labels"), labels);
    check_idx_set(read_idx(dir.file("images"), dir.file("labels")), 7, 5, 4);
  }
  SECTION("gzip'd") {
    write_file(dir.file("images.gz"), gzip_stored(images));
    write_file(dir.file("labels.gz"), gzip_stored(labels));
    check_idx_set(read_idx(dir.file("images.gz"), dir.file("labels.gz")), 7, 5, 4);
  }
  SECTION("gzip is recognised by content, not by name") {
    write_file(dir.file("images.idx"), gzip_stored(images));  // gzip without .gz
    write_file(dir.file("labels.gz"), labels);                // plain despite .gz
    check_idx_set(read_idx(dir.file("images.idx"), dir.file("labels.gz")), 7, 5, 4);
  }
  SECTION("more than one stored block (gzip files over 64 KiB)") {
    const auto big = idx_images(3, 200, 150);  // 90016 bytes
    write_file(dir.file("images.gz"), gzip_stored(big));
    write_file(dir.file("labels"), idx_labels(3));
    check_idx_set(read_idx(dir.file("images.gz"), dir.file("labels")), 3, 200, 150);
  }
}

TEST_CASE("read_idx allocates the data set untracked", "[data][unit]") {
  TempDir dir;
  write_file(dir.file("images"), idx_images(64, 28, 28));
  write_file(dir.file("labels"), idx_labels(64));
  auto& meter = neuroflux::MemoryMeter::cpu();
  const int64_t before = meter.current();
  const auto set = read_idx(dir.file("images"), dir.file("labels"));
  // 200 KB of images would show; allow for small tracked temporaries freed already.
  CHECK(meter.current() - before < 4096);
  CHECK(set.size() == 64);
}

TEST_CASE("read_idx diagnoses broken IDX files", "[data][unit]") {
  TempDir dir;
  const auto images = idx_images(4, 5, 5);  // 16 + 100 bytes
  const auto labels = idx_labels(4);        // 8 + 4 bytes
  const auto img = dir.file("img-idx3-ubyte");
  const auto lbl = dir.file("lbl-idx1-ubyte");
  write_file(img, images);
  write_file(lbl, labels);

  SECTION("truncated images, plain") {
    write_file(img, truncated(images, 16 + 60));
    const auto message = data_error([&] { read_idx(img, lbl); });
    CHECK_THAT(message,
               Contains(img) && Contains("truncated at byte 76: expected 100 pixel bytes after the "
                                         "16-byte header, file ends after 60"));
  }
  SECTION("truncated images, gzip'd (a complete gzip of a short file)") {
    write_file(img + ".gz", gzip_stored(truncated(images, 16 + 60)));
    const auto message = data_error([&] { read_idx(img + ".gz", lbl); });
    CHECK_THAT(message, Contains(img + ".gz") && Contains("truncated at byte 76") &&
                            Contains("file ends after 60"));
  }
  SECTION("truncated gzip stream") {
    const auto gz = gzip_stored(images);
    // Cut inside the stored block: 10-byte gzip header + 5-byte block header + 50 data bytes.
    write_file(img + ".gz", truncated(gz, 10 + 5 + 50));
    const auto message = data_error([&] { read_idx(img + ".gz", lbl); });
    CHECK_THAT(message, Contains(img + ".gz") && Contains("truncated at byte 50") &&
                            Contains("expected 100 pixel bytes") &&
                            Contains("gzip stream itself is cut off"));
  }
  SECTION("truncated header") {
    write_file(img, truncated(images, 10));
    const auto message = data_error([&] { read_idx(img, lbl); });
    CHECK_THAT(message, Contains(img) && Contains("truncated at byte 10") &&
                            Contains("16-byte IDX images header"));
  }
  SECTION("truncated labels") {
    write_file(lbl, truncated(labels, 8 + 3));
    const auto message = data_error([&] { read_idx(img, lbl); });
    CHECK_THAT(message, Contains(lbl) && Contains("truncated at byte 11") &&
                            Contains("expected 4 label bytes after the 8-byte header") &&
                            Contains("file ends after 3"));
  }
  SECTION("bad magic number") {
    auto bad = images;
    bad[3] = 0x02;
    write_file(img, bad);
    const auto message = data_error([&] { read_idx(img, lbl); });
    CHECK_THAT(message, Contains(img) && Contains("bad magic number 0x00000802 at byte 0") &&
                            Contains("expected 0x00000803"));
  }
  SECTION("image and label files swapped") {
    const auto message = data_error([&] { read_idx(lbl, img); });
    CHECK_THAT(message,
               Contains(lbl) && Contains("bad magic number 0x00000801") && Contains("label file?"));
  }
  SECTION("not an IDX file at all") {
    write_file(img,
               {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '!', '!', '!', '!', '!'});
    CHECK_THAT(data_error([&] { read_idx(img, lbl); }), Contains("not an IDX file"));
  }
  SECTION("zero-sized dimension") {
    auto bad = images;
    bad[11] = 0;  // height 0
    write_file(img, bad);
    CHECK_THAT(data_error([&] { read_idx(img, lbl); }),
               Contains(img) && Contains("bad dimension 1 at byte 8"));
  }
  SECTION("image and label counts differ") {
    write_file(lbl, idx_labels(3));
    const auto message = data_error([&] { read_idx(img, lbl); });
    CHECK_THAT(message, Contains(lbl) && Contains("holds 3 labels") && Contains(img) &&
                            Contains("holds 4 images"));
  }
  SECTION("label out of range") {
    auto bad = labels;
    bad[8 + 2] = 10;
    write_file(lbl, bad);
    const auto message = data_error([&] { read_idx(img, lbl); });
    CHECK_THAT(message, Contains(lbl) && Contains("label 10 at byte 10") &&
                            Contains("expected labels below 10"));
  }
  SECTION("trailing bytes") {
    auto longer = images;
    longer.push_back(0);
    write_file(img, longer);
    const auto message = data_error([&] { read_idx(img, lbl); });
    CHECK_THAT(message, Contains(img) && Contains("unexpected data at byte 116"));
  }
  SECTION("header claims far more than the file holds") {
    auto bad = images;
    bad[4] = 0x7f;  // ~2e9 images of 5x5: must fail on size, not by allocating 200 GB
    write_file(lbl, idx_labels(4));
    write_file(img, bad);
    CHECK_THAT(data_error([&] { read_idx(img, lbl); }), Contains("holds 4 labels"));
    auto many_labels = idx_labels(4);
    many_labels[4] = 0x7f;
    write_file(lbl, many_labels);
    CHECK_THAT(data_error([&] { read_idx(img, lbl); }),
               Contains(lbl) && Contains("truncated at byte 12") && Contains("file ends after 4"));
  }
  SECTION("corrupt gzip: bad checksum") {
    auto gz = gzip_stored(images);
    gz[gz.size() - 8] ^= 0xff;  // first CRC byte
    write_file(img + ".gz", gz);
    const auto message = data_error([&] { read_idx(img + ".gz", lbl); });
    CHECK_THAT(message, Contains(img + ".gz") && Contains("corrupt gzip stream") &&
                            Contains("incorrect data check"));
  }
  SECTION("corrupt gzip: invalid block") {
    auto gz = gzip_stored(images);
    gz[10] = 0x07;  // BTYPE 11 is reserved
    write_file(img + ".gz", gz);
    const auto message = data_error([&] { read_idx(img + ".gz", lbl); });
    CHECK_THAT(message, Contains(img + ".gz") && Contains("corrupt gzip stream at byte 0") &&
                            Contains("invalid block type"));
  }
  SECTION("missing file") {
    const auto message = data_error([&] { read_idx(dir.file("nope"), lbl); });
    CHECK_THAT(message, Contains(dir.file("nope")) && Contains("cannot open"));
  }
}

TEST_CASE("read_mnist_like finds plain or gzip'd files under root", "[data][unit]") {
  TempDir dir;
  write_file(dir.file("train-images-idx3-ubyte.gz"), gzip_stored(idx_images(6, 28, 28)));
  write_file(dir.file("train-labels-idx1-ubyte"), idx_labels(6));
  write_file(dir.file("t10k-images-idx3-ubyte"), idx_images(3, 28, 28));
  write_file(dir.file("t10k-labels-idx1-ubyte.gz"), gzip_stored(idx_labels(3)));
  CHECK(read_mnist_like(dir.path().string(), true).size() == 6);
  CHECK(read_mnist_like(dir.path().string(), false).size() == 3);

  std::filesystem::remove(dir.file("t10k-images-idx3-ubyte"));
  const auto message = data_error([&] { read_mnist_like(dir.path().string(), false); });
  CHECK_THAT(message, Contains(dir.file("t10k-images-idx3-ubyte")) &&
                          Contains(dir.file("t10k-images-idx3-ubyte.gz")));
}

TEST_CASE("read_cifar reads CIFAR-10 and CIFAR-100 binaries", "[data][unit]") {
  TempDir dir;
  SECTION("CIFAR-10, files directly under root") {
    for (int b = 1; b <= 5; ++b) {
      write_file(dir.file("data_batch_" + std::to_string(b) + ".bin"),
                 cifar_records(3, 10, false, (b - 1) * 3));
    }
    write_file(dir.file("test_batch.bin"), cifar_records(2, 10, false));
    const auto train = read_cifar(dir.path().string(), 10, true);
    REQUIRE(train.size() == 15);
    REQUIRE(train.num_classes == 10);
    REQUIRE(train.images.sizes() == torch::IntArrayRef({15, 3, 32, 32}));
    for (int64_t i = 0; i < 15; ++i) {
      CHECK(train.labels[i].item<int64_t>() == label_of(i, 10));
      // Channel-major records: channel c of record i is pixel(i + 5c, y, x).
      for (int64_t c = 0; c < 3; ++c) {
        CHECK(train.images[i][c][7][9].item<float>() == Approx(pixel(i + 5 * c, 7, 9) / 255.0));
      }
    }
    CHECK(read_cifar(dir.path().string(), 10, false).size() == 2);
  }
  SECTION("CIFAR-100 in cifar-100-binary/, gzip'd train file") {
    std::filesystem::create_directories(dir.path() / "cifar-100-binary");
    write_file(dir.file("cifar-100-binary/train.bin.gz"), gzip_stored(cifar_records(4, 100, true)));
    write_file(dir.file("cifar-100-binary/test.bin"), cifar_records(2, 100, true));
    const auto train = read_cifar(dir.path().string(), 100, true);
    REQUIRE(train.size() == 4);
    REQUIRE(train.num_classes == 100);
    for (int64_t i = 0; i < 4; ++i) CHECK(train.labels[i].item<int64_t>() == label_of(i, 100));
    CHECK(read_cifar(dir.path().string(), 100, false).size() == 2);
  }
}

TEST_CASE("read_cifar diagnoses broken files", "[data][unit]") {
  TempDir dir;
  SECTION("truncated CIFAR-10 record") {
    write_file(dir.file("test_batch.bin"), truncated(cifar_records(3, 10, false), 2 * 3073 + 100));
    const auto message = data_error([&] { read_cifar(dir.path().string(), 10, false); });
    CHECK_THAT(message, Contains(dir.file("test_batch.bin")) &&
                            Contains("truncated at byte 6246") && Contains("3073-byte records") &&
                            Contains("100 bytes of record 2 (which starts at byte 6146)"));
  }
  SECTION("truncated CIFAR-100 record") {
    write_file(dir.file("test.bin"), truncated(cifar_records(2, 100, true), 3074 + 1));
    const auto message = data_error([&] { read_cifar(dir.path().string(), 100, false); });
    CHECK_THAT(message, Contains(dir.file("test.bin")) && Contains("truncated at byte 3075") &&
                            Contains("3074-byte records"));
  }
  SECTION("empty file") {
    write_file(dir.file("test_batch.bin"), {});
    CHECK_THAT(data_error([&] { read_cifar(dir.path().string(), 10, false); }),
               Contains("truncated at byte 0"));
  }
  SECTION("label out of range") {
    auto records = cifar_records(3, 10, false);
    records[3073] = 12;  // record 1's label
    write_file(dir.file("test_batch.bin"), records);
    CHECK_THAT(data_error([&] { read_cifar(dir.path().string(), 10, false); }),
               Contains("label 12 at byte 3073 (record 1)"));
  }
  SECTION("CIFAR-100 coarse label out of range") {
    auto records = cifar_records(2, 100, true);
    records[0] = 20;
    write_file(dir.file("test.bin"), records);
    CHECK_THAT(data_error([&] { read_cifar(dir.path().string(), 100, false); }),
               Contains("coarse label 20 at byte 0"));
  }
  SECTION("missing batch names every path tried") {
    for (int b = 1; b <= 4; ++b) {
      write_file(dir.file("data_batch_" + std::to_string(b) + ".bin"), cifar_records(1, 10, false));
    }
    const auto message = data_error([&] { read_cifar(dir.path().string(), 10, true); });
    CHECK_THAT(message, Contains(dir.file("data_batch_5.bin")) &&
                            Contains(dir.file("cifar-10-batches-bin/data_batch_5.bin.gz")));
  }
}

TEST_CASE("read_mnist_like reads the installed Fashion-MNIST", "[data][unit]") {
  const std::string root = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(root)) {
    WARN("skipped: " << root << " does not exist");
    return;
  }
  const auto train = read_mnist_like(root, true);
  const auto test = read_mnist_like(root, false);
  CHECK(train.images.sizes() == torch::IntArrayRef({60000, 1, 28, 28}));
  CHECK(test.images.sizes() == torch::IntArrayRef({10000, 1, 28, 28}));
  CHECK(train.num_classes == 10);
  // Every class is present in both splits; pixel values stay in [0, 1].
  CHECK(std::get<0>(torch::_unique(train.labels)).numel() == 10);
  CHECK(std::get<0>(torch::_unique(test.labels)).numel() == 10);
  CHECK(train.images.min().item<float>() >= 0.0f);
  CHECK(train.images.max().item<float>() <= 1.0f);
}
