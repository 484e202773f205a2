// Tiny image folders for the image_folder tests: PNG and JPEG files written with stb_image_write
// into a temporary directory, with pixels a test chooses.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace neuroflux::data::test {

/// Interleaved pixels [height, width, channels], as the files store them.
struct TestImage {
  int width = 0, height = 0, channels = 0;
  std::vector<uint8_t> data;

  uint8_t at(int y, int x, int c) const { return data[(y * width + x) * channels + c]; }
};

/// Every pixel `value` in every channel.
TestImage constant_image(int width, int height, int channels, uint8_t value);
/// Every pixel (r, g, b).
TestImage colour_image(int width, int height, uint8_t r, uint8_t g, uint8_t b);
/// Values drawn from `seed`, so a round trip that shifts or swaps anything shows it.
TestImage random_image(int width, int height, int channels, uint32_t seed);

/// Writes `image` as PNG, or as JPEG at `quality`; creates the parent folders.
void write_png(const std::filesystem::path& path, const TestImage& image);
void write_jpeg(const std::filesystem::path& path, const TestImage& image, int quality = 95);

}  // namespace neuroflux::data::test
