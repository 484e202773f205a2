#include "data/image_folder_test_files.h"

#include <random>
#include <stdexcept>

// The one translation unit of the tests that compiles stb_image_write.
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>

namespace neuroflux::data::test {

TestImage constant_image(int width, int height, int channels, uint8_t value) {
  return {width, height, channels,
          std::vector<uint8_t>(static_cast<size_t>(width * height * channels), value)};
}

TestImage colour_image(int width, int height, uint8_t r, uint8_t g, uint8_t b) {
  TestImage image{width, height, 3, {}};
  for (int i = 0; i < width * height; ++i) image.data.insert(image.data.end(), {r, g, b});
  return image;
}

TestImage random_image(int width, int height, int channels, uint32_t seed) {
  std::mt19937 generator(seed);
  TestImage image{width, height, channels, {}};
  for (int i = 0; i < width * height * channels; ++i)
    image.data.push_back(static_cast<uint8_t>(generator() & 0xff));
  return image;
}

void write_png(const std::filesystem::path& path, const TestImage& image) {
  std::filesystem::create_directories(path.parent_path());
  if (stbi_write_png(path.c_str(), image.width, image.height, image.channels, image.data.data(),
                     image.width * image.channels) == 0)
    throw std::runtime_error("cannot write " + path.string());
}

void write_jpeg(const std::filesystem::path& path, const TestImage& image, int quality) {
  std::filesystem::create_directories(path.parent_path());
  if (stbi_write_jpg(path.c_str(), image.width, image.height, image.channels, image.data.data(),
                     quality) == 0)
    throw std::runtime_error("cannot write " + path.string());
}

}  // namespace neuroflux::data::test
