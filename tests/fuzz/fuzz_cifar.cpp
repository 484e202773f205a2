// The CIFAR binary reader on one test file, plain or gzip'd. Input: one byte (odd: CIFAR-100,
// even: CIFAR-10), then the file. Promise: a DataError, or one sample per whole record with
// labels below the class count and pixels in [0, 1].
#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>

#include "fuzz_support.h"
#include "neuroflux/data/readers.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool cifar100 = (data[0] & 1) != 0;
  const int classes = cifar100 ? 100 : 10;
  const auto root = neuroflux::fuzz::scratch_dir() / "cifar";
  std::filesystem::create_directories(root);
  // Only one of the two names exists at a time, so the reader never finds last input's file.
  std::filesystem::remove(root / (cifar100 ? "test_batch.bin" : "test.bin"));
  neuroflux::fuzz::write_bytes(root / (cifar100 ? "test.bin" : "test_batch.bin"), data + 1,
                               size - 1);
  neuroflux::fuzz::expect_clear_errors([&] {
    const neuroflux::data::ImageSet set =
        neuroflux::data::read_cifar(root.string(), classes, /*train=*/false);
    const bool gzipped = size >= 3 && data[1] == 0x1f && data[2] == 0x8b;
    const int64_t record = (cifar100 ? 2 : 1) + 3 * 32 * 32;
    const int64_t n = gzipped ? set.images.size(0) : static_cast<int64_t>(size - 1) / record;
    NF_FUZZ_REQUIRE(set.images.sizes() == at::IntArrayRef({n, 3, 32, 32}), "one image per record");
    NF_FUZZ_REQUIRE(set.labels.dim() == 1 && set.labels.size(0) == set.images.size(0),
                    "one label per image");
    NF_FUZZ_REQUIRE(set.labels.min().item<int64_t>() >= 0 &&
                        set.labels.max().item<int64_t>() < classes,
                    "labels in range");
    NF_FUZZ_REQUIRE(set.images.min().item<float>() >= 0 && set.images.max().item<float>() <= 1,
                    "pixels in [0, 1]");
  });
  return 0;
}
