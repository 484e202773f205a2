// The IDX reader (Fashion-MNIST / MNIST) on a label file and an image file, each plain or gzip'd.
// Input: the label file's length as 2 bytes little-endian, the label file, then the image file
// (the rest). Promise: a DataError, or a set of exactly as many images as the headers state, with
// labels below 10 and pixels in [0, 1].
#include <torch/torch.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "fuzz_support.h"
#include "neuroflux/data/readers.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t label_bytes = std::min<size_t>(data[0] | (size_t{data[1]} << 8), size - 2);
  const auto& dir = neuroflux::fuzz::scratch_dir();
  const std::string labels = neuroflux::fuzz::write_bytes(dir / "labels", data + 2, label_bytes);
  const std::string images = neuroflux::fuzz::write_bytes(dir / "images", data + 2 + label_bytes,
                                                          size - 2 - label_bytes);
  neuroflux::fuzz::expect_clear_errors([&] {
    const neuroflux::data::ImageSet set = neuroflux::data::read_idx(images, labels);
    const int64_t n = set.images.size(0);
    NF_FUZZ_REQUIRE(set.images.dim() == 4 && set.images.size(1) == 1, "images are N x 1 x H x W");
    NF_FUZZ_REQUIRE(set.labels.dim() == 1 && set.labels.size(0) == n, "one label per image");
    NF_FUZZ_REQUIRE(n >= 1 && set.num_classes == 10, "IDX sets have ten classes");
    const uint8_t* image_file = data + 2 + label_bytes;
    if (size - 2 - label_bytes >= 16 && !(image_file[0] == 0x1f && image_file[1] == 0x8b)) {
      // A plain file: the header's count and sides are what came back.
      const auto be32 = [&](int at) {
        return (int64_t{image_file[at]} << 24) | (int64_t{image_file[at + 1]} << 16) |
               (int64_t{image_file[at + 2]} << 8) | int64_t{image_file[at + 3]};
      };
      NF_FUZZ_REQUIRE(set.images.sizes() == at::IntArrayRef({be32(4), 1, be32(8), be32(12)}),
                      "the header's sizes");
    }
    NF_FUZZ_REQUIRE(set.labels.min().item<int64_t>() >= 0 &&
                        set.labels.max().item<int64_t>() < 10,
                    "labels in range");
    if (set.images.numel() > 0) {
      NF_FUZZ_REQUIRE(set.images.min().item<float>() >= 0 && set.images.max().item<float>() <= 1,
                      "pixels in [0, 1]");
    }
  });
  return 0;
}
