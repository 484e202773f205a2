#include "data/image_decode.h"

#include <stb_image.h>
#include <stb_image_resize.h>

#include <climits>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "data/stb_config.h"

namespace neuroflux::data::detail {
namespace {

// stb takes an int length; a larger file is no JPEG or PNG anyone trains on.
int stb_length(size_t size) {
  if (size > static_cast<size_t>(INT_MAX))
    throw ImageDecodeError("file of " + std::to_string(size) + " bytes is too large to decode");
  return static_cast<int>(size);
}

std::string stb_reason() {
  const char* reason = stbi_failure_reason();
  return reason != nullptr ? reason : "unknown error";
}

}  // namespace

ImageHeader read_image_header(const uint8_t* bytes, size_t size) {
  int width = 0, height = 0, components = 0;
  if (stbi_info_from_memory(bytes, stb_length(size), &width, &height, &components) == 0)
    throw ImageDecodeError("not a readable JPEG or PNG (" + stb_reason() + ")");
  // 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA (a palette counts as colour, as PIL sees it).
  return {width, height, components >= 3};
}

Pixels decode_image(const uint8_t* bytes, size_t size, int channels) {
  int width = 0, height = 0, components = 0;
  const std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load_from_memory(bytes, stb_length(size), &width, &height, &components, channels),
      stbi_image_free);
  if (!pixels) throw ImageDecodeError("cannot decode (" + stb_reason() + ")");
  Pixels out;
  out.width = width;
  out.height = height;
  out.channels = channels;
  const size_t count =
      static_cast<size_t>(width) * static_cast<size_t>(height) * static_cast<size_t>(channels);
  out.data.assign(pixels.get(), pixels.get() + count);
  return out;
}

std::pair<int, int> resized_shape(int height, int width, int size) {
  const bool portrait = width <= height;
  const int64_t shorter = portrait ? width : height, longer = portrait ? height : width;
  // Python's int(size * long / short): the product is exact, the division a double, truncated.
  const int other =
      static_cast<int>(static_cast<double>(int64_t{size} * longer) / static_cast<double>(shorter));
  return portrait ? std::pair{other, size} : std::pair{size, other};
}

Pixels resize(const Pixels& image, int height, int width) {
  if (image.height == height && image.width == width) return image;
  Pixels out;
  out.width = width;
  out.height = height;
  out.channels = image.channels;
  out.data.resize(static_cast<size_t>(width) * static_cast<size_t>(height) *
                  static_cast<size_t>(image.channels));
  // Linear colour space (no sRGB round trip) and clamped edges: what PIL does for uint8 images.
  const int ok = stbir_resize_uint8_generic(
      image.data.data(), image.width, image.height, 0, out.data.data(), width, height, 0,
      image.channels, STBIR_ALPHA_CHANNEL_NONE, 0, STBIR_EDGE_CLAMP, STBIR_FILTER_TRIANGLE,
      STBIR_COLORSPACE_LINEAR, nullptr);
  if (ok == 0)
    throw ImageDecodeError("cannot resize " + std::to_string(image.width) + "x" +
                           std::to_string(image.height) + " to " + std::to_string(width) + "x" +
                           std::to_string(height));
  return out;
}

void centre_crop_planar(const Pixels& image, int height, int width, uint8_t* out) {
  if (height > image.height || width > image.width)
    throw ImageDecodeError("cannot crop " + std::to_string(width) + "x" + std::to_string(height) +
                           " from " + std::to_string(image.width) + "x" +
                           std::to_string(image.height));
  // Python's round((h - size) / 2): half to even, which nearbyint does in the default mode.
  const int top = static_cast<int>(std::nearbyint((image.height - height) / 2.0));
  const int left = static_cast<int>(std::nearbyint((image.width - width) / 2.0));
  const size_t plane = static_cast<size_t>(height) * static_cast<size_t>(width);
  for (int c = 0; c < image.channels; ++c) {
    uint8_t* target = out + static_cast<size_t>(c) * plane;
    for (int y = 0; y < height; ++y) {
      const uint8_t* row =
          image.data.data() + (static_cast<size_t>(top + y) * image.width + left) * image.channels;
      for (int x = 0; x < width; ++x) target[y * width + x] = row[x * image.channels + c];
    }
  }
}

}  // namespace neuroflux::data::detail
