#include "data/listing_decoder.h"

#include <ATen/Parallel.h>
#include <fcntl.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "data/image_decode.h"
#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/util/progress.h"

namespace neuroflux::data::detail {
namespace {

// Images decoded between two progress updates; also bounds the decoded chunk held in memory.
constexpr int64_t kDecodeChunk = 64;

// One image after decoding, planar [channels, height, width], or why it could not be.
struct Decoded {
  std::vector<uint8_t> planes;
  int channels = 0, height = 0, width = 0;
  std::string error;
};

std::vector<uint8_t> read_whole_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw ImageDecodeError(std::string("cannot open: ") + std::strerror(errno));
  std::vector<uint8_t> bytes;
  uint8_t buffer[1 << 16];
  while (true) {
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      const int read_errno = errno;
      ::close(fd);
      throw ImageDecodeError(std::string("cannot read: ") + std::strerror(read_errno));
    }
    if (got == 0) break;
    bytes.insert(bytes.end(), buffer, buffer + got);
  }
  ::close(fd);
  return bytes;
}

Decoded decode_one(const ListedImage& image, const DecodeOptions& options) {
  Decoded out;
  try {
    const auto bytes = read_whole_file(image.path);
    if (bytes.empty()) throw ImageDecodeError("empty file");
    int channels = static_cast<int>(options.channels);
    if (channels == 0) channels = read_image_header(bytes.data(), bytes.size()).colour ? 3 : 1;
    Pixels pixels = decode_image(bytes.data(), bytes.size(), channels);
    if (options.image_size > 0) {
      const int size = static_cast<int>(options.image_size);
      const auto [height, width] = resized_shape(pixels.height, pixels.width, size);
      pixels = resize(pixels, height, width);
      out.height = out.width = size;
    } else {
      out.height = pixels.height;
      out.width = pixels.width;
    }
    out.channels = channels;
    out.planes.resize(static_cast<size_t>(channels) * out.height * out.width);
    centre_crop_planar(pixels, out.height, out.width, out.planes.data());
  } catch (const ImageDecodeError& e) {
    out.error = e.what();
  } catch (const std::bad_alloc&) {
    out.error = "out of memory decoding it";
  }
  return out;
}

std::string dimensions_text(int width, int height) {
  return std::to_string(width) + "x" + std::to_string(height);
}

}  // namespace

CachedImages decode_listing(const ImageListing& listing, const DecodeOptions& options) {
  const auto& images = listing.images;
  const auto n = static_cast<int64_t>(images.size());
  // Auto channels: decoded as 3 until every image is known to be grey, then cut to one.
  const int64_t stored_channels = options.channels == 0 ? 3 : options.channels;
  UntrackedScope untracked;  // the data set is host memory outside the device budget
  at::Tensor pixels;         // allocated once the first image gives the size
  auto labels = torch::empty({n}, torch::kInt64);
  auto test = torch::empty({n}, torch::kBool);
  int64_t* label_of = labels.data_ptr<int64_t>();
  bool* test_of = test.data_ptr<bool>();
  int64_t good = 0, skipped = 0;
  bool any_colour = false;
  const ListedImage* first = nullptr;

  Progress progress("decoding " + listing.root, n, "img/s");
  std::vector<Decoded> chunk;
  for (int64_t start = 0; start < n; start += kDecodeChunk) {
    const int64_t count = std::min(kDecodeChunk, n - start);
    chunk.assign(static_cast<size_t>(count), Decoded{});
    at::parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        chunk[i] = decode_one(images[static_cast<size_t>(start + i)], options);
    });
    for (int64_t i = 0; i < count; ++i) {
      const ListedImage& image = images[static_cast<size_t>(start + i)];
      Decoded& decoded = chunk[static_cast<size_t>(i)];
      if (!decoded.error.empty()) {
        if (!options.skip_bad_images) {
          throw DataError(image.path + ": " + decoded.error +
                          " (set data.skip_bad_images to skip unreadable images)");
        }
        log_line("warning: " + image.path + ": " + decoded.error + "; skipped");
        ++skipped;
        continue;
      }
      if (!pixels.defined()) {
        first = &image;
        pixels = torch::empty({n, stored_channels, decoded.height, decoded.width}, torch::kUInt8);
      } else if (decoded.height != pixels.size(2) || decoded.width != pixels.size(3)) {
        throw ConfigError(
            "/data/image_size: the images differ in size (" + first->path + " is " +
            dimensions_text(static_cast<int>(pixels.size(3)), static_cast<int>(pixels.size(2))) + ", " +
            image.path + " is " + dimensions_text(decoded.width, decoded.height) +
            "); set data.image_size to resize every image (shorter side, then a centre crop)");
      }
      auto target = pixels.select(0, good);
      const auto source = torch::from_blob(
          decoded.planes.data(), {decoded.channels, decoded.height, decoded.width}, torch::kUInt8);
      target.copy_(source.expand({stored_channels, decoded.height, decoded.width}));
      any_colour = any_colour || decoded.channels == 3;
      label_of[good] = image.label;
      test_of[good] = image.test;
      ++good;
    }
    progress.update(start + count, skipped > 0 ? std::to_string(skipped) + " skipped" : "");
  }
  if (good == 0)
    throw DataError(listing.root + ": none of the " + std::to_string(n) +
                    " images could be decoded");
  progress.finish(skipped > 0 ? std::to_string(skipped) + " unreadable skipped" : "");

  CachedImages out;
  out.pixels = pixels.narrow(0, 0, good);
  if (options.channels == 0 && !any_colour) out.pixels = out.pixels.narrow(1, 0, 1);
  // A copy only when something was cut off, so the stored set owns just what it holds.
  if (good < n || out.pixels.size(1) != stored_channels)
    out.pixels = out.pixels.clone(at::MemoryFormat::Contiguous);
  out.labels = labels.narrow(0, 0, good).clone();
  out.test = test.narrow(0, 0, good).clone();
  out.num_classes = static_cast<int64_t>(listing.classes.size());
  out.skipped = skipped;
  return out;
}

}  // namespace neuroflux::data::detail
