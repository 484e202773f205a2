// One JPEG or PNG in memory to the uint8 pixels a data set stores: decoded with stb_image,
// converted to grey or RGB, its shorter side resized and the centre cropped as torchvision's
// Resize(size) + CenterCrop(size) do. Failures are ImageDecodeError with stb's reason; the caller
// adds the file name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <utility>
#include <vector>

namespace neuroflux::data::detail {

class ImageDecodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// What the file's header says: size, and whether it holds colour (grey and grey+alpha do not).
struct ImageHeader {
  int width = 0, height = 0;
  bool colour = false;
};

ImageHeader read_image_header(const uint8_t* bytes, size_t size);

/// Interleaved pixels, [height, width, channels] row by row.
struct Pixels {
  std::vector<uint8_t> data;
  int width = 0, height = 0, channels = 0;
};

/// Decodes to `channels` (1: luminance, 3: RGB with grey replicated); alpha is dropped, not
/// composited, as PIL's convert("RGB") does.
Pixels decode_image(const uint8_t* bytes, size_t size, int channels);

/// The size torchvision's Resize(size) gives: the shorter side becomes `size`, the longer one
/// keeps the aspect ratio, truncated.
std::pair<int, int> resized_shape(int height, int width, int size);

/// Resizes to `height` x `width` with a triangle (bilinear) filter, widened when shrinking so
/// every source pixel counts, as PIL's bilinear resize does.
Pixels resize(const Pixels& image, int height, int width);

/// Copies the centred `height` x `width` window into `out`, planar [channels, height, width];
/// the offset rounds half to even, as torchvision's CenterCrop does.
void centre_crop_planar(const Pixels& image, int height, int width, uint8_t* out);

}  // namespace neuroflux::data::detail
