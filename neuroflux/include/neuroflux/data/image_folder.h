// data.name = "image_folder": JPEG and PNG files in one folder per class (torchvision's
// ImageFolder layout), either ROOT/<class>/... or ROOT/train/<class>/... + ROOT/test/<class>/...
// Classes are numbered in sorted folder-name order. The images are decoded once (stb_image) into
// a checksummed uint8 cache file that later loads read instead (README "Image folders").
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "neuroflux/config/config.h"

namespace neuroflux::data {

struct ImageFolderOptions {
  std::string root;
  int64_t image_size = 0;        ///< shorter side resized, centre crop; 0 = the images' own size
  int64_t channels = 0;          ///< 1 or 3; 0 = 1 when every image is grey, else 3
  bool skip_bad_images = false;  ///< unreadable images: a warning and skipped, else DataError
  std::string cache_dir;         ///< where the decoded cache lives; "" = none, decode every time
};

/// The folder decoded, before any normalisation.
struct DecodedImageFolder {
  at::Tensor pixels;                 ///< uint8 [N, C, H, W]
  at::Tensor labels;                 ///< int64 [N]
  at::Tensor test;                   ///< bool [N]: under ROOT/test/ (all false for a flat folder)
  std::vector<std::string> classes;  ///< sorted; index = label
  bool has_test_folder = false;
  int64_t skipped = 0;      ///< unreadable images left out (skip_bad_images)
  bool from_cache = false;  ///< read back from the cache file, nothing decoded
  std::string cache_path;   ///< the cache file ("" without a cache_dir)
};

/// Lists, then reads the cache or decodes. Errors: a missing root, fewer than two classes, an
/// empty class folder, train/ and test/ with different classes, images of differing sizes with
/// no image_size: ConfigError (exit 2) naming /data/... and the folder; an unreadable or corrupt
/// image: DataError (exit 3) naming the file, unless skip_bad_images.
DecodedImageFolder decode_image_folder(const ImageFolderOptions& options);

/// The options data.* gives, checked (channels must be 1, 3 or auto).
ImageFolderOptions image_folder_options(const DataConfig& config, const std::string& cache_dir);

}  // namespace neuroflux::data
