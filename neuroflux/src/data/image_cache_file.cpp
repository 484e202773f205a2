#include "data/image_cache_file.h"

#include <torch/torch.h>

#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/util/atomic_file.h"
#include "util/checksum.h"

namespace neuroflux::data::detail {
namespace {

constexpr int64_t kMaxCachedSide = int64_t{1} << 15;
constexpr int64_t kLabelBytes = 4, kFlagBytes = 1;

uint32_t image_header_crc_of(const ImageCacheHeader& header) {
  return crc32_of(&header, offsetof(ImageCacheHeader, header_crc));
}

const uint8_t* pixel_bytes_of(const at::Tensor& t) { return static_cast<const uint8_t*>(t.data_ptr()); }
uint64_t size_of(const at::Tensor& t) {
  return static_cast<uint64_t>(t.numel() * t.element_size());
}

ImageCacheRead refused(const std::string& problem, bool corrupt) {
  return {std::nullopt, problem, corrupt};
}

}  // namespace

void write_image_cache(const std::string& path, uint64_t key, const CachedImages& images) {
  UntrackedScope untracked;
  const auto pixels = images.pixels.contiguous();
  const auto labels = images.labels.to(torch::kInt32).contiguous();
  const auto test = images.test.to(torch::kUInt8).contiguous();
  ImageCacheHeader header;
  std::memset(&header, 0, sizeof header);
  std::memcpy(header.magic, kImageCacheMagic, sizeof header.magic);
  header.version = kImageCacheVersion;
  header.channels = static_cast<uint32_t>(pixels.size(1));
  header.count = pixels.size(0);
  header.height = pixels.size(2);
  header.width = pixels.size(3);
  header.num_classes = images.num_classes;
  header.skipped = images.skipped;
  header.key = key;
  header.data_bytes = size_of(labels) + size_of(test) + size_of(pixels);
  uint32_t crc = crc32_of(pixel_bytes_of(labels), size_of(labels));
  crc = crc32_of(pixel_bytes_of(test), size_of(test), crc);
  header.data_crc = crc32_of(pixel_bytes_of(pixels), size_of(pixels), crc);
  header.header_crc = image_header_crc_of(header);
  write_atomic_bytes(path, [&](const ByteSink& sink) {
    sink(&header, sizeof header);
    for (const auto* part : {&labels, &test, &pixels}) sink(pixel_bytes_of(*part), size_of(*part));
  });
}

ImageCacheRead read_image_cache(const std::string& path, uint64_t key) {
  std::error_code error;
  if (!std::filesystem::exists(path, error)) return {};
  const auto file_bytes = static_cast<uint64_t>(std::filesystem::file_size(path, error));
  if (error) return refused("cannot read its size: " + error.message(), true);
  std::ifstream in(path, std::ios::binary);
  if (!in) return refused("cannot open it", true);

  ImageCacheHeader header;
  if (!in.read(reinterpret_cast<char*>(&header), sizeof header))
    return refused("truncated: " + std::to_string(file_bytes) + " bytes, shorter than the " +
                       std::to_string(sizeof header) + "-byte header",
                   true);
  if (std::memcmp(header.magic, kImageCacheMagic, sizeof header.magic) != 0)
    return refused("not a NeuroFlux image cache (bad magic, expected \"NFIMAGE1\")", true);
  if (header.version != kImageCacheVersion)
    return refused("written in format version " + std::to_string(header.version) +
                       ", this build reads version " + std::to_string(kImageCacheVersion),
                   false);
  if (header.header_crc != image_header_crc_of(header))
    return refused("corrupt: header checksum mismatch", true);
  if (header.key != key)
    return refused(
        "stale: decoded from key " + hex64(header.key) + ", the folder now gives " + hex64(key), false);
  // The header checksum matched, so these fail only for a file written by broken code; still
  // checked, so that no size below can overflow or allocate what the file does not hold.
  if ((header.channels != 1 && header.channels != 3) || header.height < 1 ||
      header.height > kMaxCachedSide || header.width < 1 || header.width > kMaxCachedSide || header.count < 0 ||
      header.num_classes < 1 || header.skipped < 0)
    return refused("corrupt: impossible header values", true);
  const uint64_t per_image = kLabelBytes + kFlagBytes +
                             uint64_t{header.channels} * static_cast<uint64_t>(header.height) *
                                 static_cast<uint64_t>(header.width);
  const uint64_t expected = sizeof header + static_cast<uint64_t>(header.count) * per_image;
  if (static_cast<uint64_t>(header.count) > file_bytes / per_image ||
      header.data_bytes != expected - sizeof header || file_bytes != expected)
    return refused("corrupt: " + std::to_string(file_bytes) + " bytes, its header needs " +
                       std::to_string(sizeof header + header.data_bytes),
                   true);

  UntrackedScope untracked;  // the data set is host memory outside the device budget
  const int64_t n = header.count;
  auto labels = torch::empty({n}, torch::kInt32);
  auto test = torch::empty({n}, torch::kUInt8);
  auto pixels = torch::empty(
      {n, static_cast<int64_t>(header.channels), header.height, header.width}, torch::kUInt8);
  uint32_t crc = 0;
  for (auto* part : {&labels, &test, &pixels}) {
    if (!in.read(reinterpret_cast<char*>(part->data_ptr()),
                 static_cast<std::streamsize>(size_of(*part))))
      return refused("cannot read " + std::to_string(file_bytes) + " bytes", true);
    crc = crc32_of(pixel_bytes_of(*part), size_of(*part), crc);
  }
  if (crc != header.data_crc) return refused("corrupt: data checksum mismatch", true);
  if (n > 0 &&
      (labels.min().item<int32_t>() < 0 || labels.max().item<int64_t>() >= header.num_classes))
    return refused("corrupt: a label outside [0, " + std::to_string(header.num_classes) + ")",
                   true);

  CachedImages images;
  images.pixels = pixels;
  images.labels = labels.to(torch::kInt64);
  images.test = test.to(torch::kBool);
  images.num_classes = header.num_classes;
  images.skipped = header.skipped;
  return {std::move(images), "", false};
}

}  // namespace neuroflux::data::detail
