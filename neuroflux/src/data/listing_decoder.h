// Decodes every image of a listing into one uint8 tensor: files read and decoded in parallel
// (ATen's intra-op threads), a chunk at a time, with progress; errors, sizes and channels are
// settled in listing order, so the outcome does not depend on the thread count.
#pragma once

#include <cstdint>

#include "data/image_cache_file.h"
#include "data/image_listing.h"

namespace neuroflux::data::detail {

struct DecodeOptions {
  int64_t image_size = 0;  ///< 0: keep each image's size (they must agree)
  int64_t channels = 0;    ///< 0: 1 when every image is grey, else 3
  bool skip_bad_images = false;
};

CachedImages decode_listing(const ImageListing& listing, const DecodeOptions& options);

}  // namespace neuroflux::data::detail
