// The decoded image folder on disk, so that a folder is decoded once: later epochs, resumed
// runs, eval and other runs sharing data.cache_dir read it back instead. An 80-byte header, then
// the labels (int32), the test flags (uint8) and the pixels (uint8, [N, C, H, W]), all covered by
// a crc32; the header carries its own crc and the key of the folder listing it was made from
// (image_listing.h). Written atomically (temporary name, then rename).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>

namespace neuroflux::data::detail {

constexpr char kImageCacheMagic[8] = {'N', 'F', 'I', 'M', 'A', 'G', 'E', '1'};
constexpr uint32_t kImageCacheVersion = 1;

/// Host byte order (little-endian on every target we build for); naturally aligned, no padding,
/// so its bytes are exactly what is hashed and written.
struct ImageCacheHeader {
  char magic[8];     ///< "NFIMAGE1"
  uint32_t version;  ///< kImageCacheVersion
  uint32_t channels;
  int64_t count;  ///< images stored
  int64_t height, width;
  int64_t num_classes;
  int64_t skipped;      ///< unreadable images left out when it was decoded
  uint64_t key;         ///< listing_key of the folder it was decoded from
  uint64_t data_bytes;  ///< count * (4 + 1 + channels * height * width)
  uint32_t data_crc;    ///< crc32 of everything after the header
  uint32_t header_crc;  ///< crc32 of every header byte before this field
};
static_assert(sizeof(ImageCacheHeader) == 80, "ImageCacheHeader must have no padding");

struct CachedImages {
  at::Tensor pixels;  ///< uint8 [N, C, H, W]
  at::Tensor labels;  ///< int64 [N]
  at::Tensor test;    ///< bool [N]
  int64_t num_classes = 0;
  int64_t skipped = 0;
};

/// Writes `images` to `path` atomically under `key`. A DataError naming the file when it cannot.
void write_image_cache(const std::string& path, uint64_t key, const CachedImages& images);

/// What reading a cache file found.
struct ImageCacheRead {
  std::optional<CachedImages> images;  ///< set when the file is whole and made under the key
  std::string problem;                 ///< why not ("" when there is no file at all)
  bool corrupt = false;                ///< damaged, as opposed to stale (another folder state)
};

/// Reads `path` if it exists; a file that is damaged, truncated or made from another listing is
/// reported, never returned.
ImageCacheRead read_image_cache(const std::string& path, uint64_t key);

}  // namespace neuroflux::data::detail
