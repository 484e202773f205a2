#include "neuroflux/data/image_folder.h"

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "data/image_cache_file.h"
#include "data/image_listing.h"
#include "data/listing_decoder.h"
#include "neuroflux/util/atomic_file.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/util/progress.h"
#include "util/checksum.h"

namespace neuroflux::data {
namespace {

namespace fs = std::filesystem;

// One file per (folder, image_size, channels), named after the folder so a shared cache_dir
// stays readable: "flowers-3f2a...e1.nfimg". What the folder holds is the key inside the file,
// so a changed folder replaces its own file rather than piling up new ones.
std::string cache_path(const std::string& cache_dir, const ImageFolderOptions& options) {
  std::error_code error;
  fs::path folder = fs::absolute(options.root, error).lexically_normal();
  if (!folder.has_filename()) folder = folder.parent_path();  // "images/" is "images"
  const std::string identity = folder.string() + '\n' + std::to_string(options.image_size) + '\n' +
                               std::to_string(options.channels);
  char tag[17];
  std::snprintf(tag, sizeof tag, "%016llx",
                static_cast<unsigned long long>(fnv1a(identity.data(), identity.size())));
  std::string name = folder.filename().string();
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') c = '_';
  return (fs::path(cache_dir) / (name.substr(0, 64) + "-" + tag + ".nfimg")).string();
}

DecodedImageFolder with_listing(const detail::ImageListing& listing, detail::CachedImages images,
                                std::string path, bool from_cache) {
  DecodedImageFolder out;
  out.pixels = std::move(images.pixels);
  out.labels = std::move(images.labels);
  out.test = std::move(images.test);
  out.classes = listing.classes;
  out.has_test_folder = listing.has_test_folder;
  out.skipped = images.skipped;
  out.from_cache = from_cache;
  out.cache_path = std::move(path);
  return out;
}

// The cached decode when it is whole and still describes the folder; otherwise says why not.
std::optional<detail::CachedImages> cached(const std::string& path, uint64_t key,
                                           const detail::ImageListing& listing,
                                           bool skip_bad_images) {
  auto read = detail::read_image_cache(path, key);
  if (!read.images) {
    if (read.corrupt) {
      log_line("warning: " + path + ": " + read.problem +
               "; the cache is not used, decoding the images again");
    } else if (!read.problem.empty()) {
      log_line(path + ": " + read.problem + "; decoding the images again");
    }
    return std::nullopt;
  }
  if (read.images->num_classes != static_cast<int64_t>(listing.classes.size())) {
    log_line("warning: " + path + ": holds " + std::to_string(read.images->num_classes) +
             " classes, the folder " + std::to_string(listing.classes.size()) +
             "; decoding the images again");
    return std::nullopt;
  }
  // Skipped images are a choice of this run: without skip_bad_images they are errors again.
  if (read.images->skipped > 0 && !skip_bad_images) {
    log_line(path + ": left out " + std::to_string(read.images->skipped) +
             " unreadable image(s), but data.skip_bad_images is false; decoding again");
    return std::nullopt;
  }
  return std::move(read.images);
}

void store(const std::string& path, uint64_t key, const detail::CachedImages& images) {
  try {
    const std::string dir = fs::path(path).parent_path().string();
    std::error_code error;
    fs::create_directories(dir, error);
    if (error) throw DataError(dir + ": cannot create the image cache folder: " + error.message());
    remove_stale_temporaries(dir);  // what a killed run left half-written
    detail::write_image_cache(path, key, images);
  } catch (const DataError& e) {
    // The cache only saves time: this run has its images, later ones decode them again.
    log_line(std::string("warning: ") + e.what() + "; the decoded images are not cached");
  }
}

}  // namespace

ImageFolderOptions image_folder_options(const DataConfig& config, const std::string& cache_dir) {
  if (config.channels != 0 && config.channels != 1 && config.channels != 3) {
    throw ConfigError("/data/channels: expected 1, 3 or \"auto\" for image_folder, got " +
                      std::to_string(config.channels));
  }
  ImageFolderOptions options;
  options.root = config.root;
  options.image_size = config.image_size;
  options.channels = config.channels;
  options.skip_bad_images = config.skip_bad_images;
  options.cache_dir = cache_dir;
  return options;
}

DecodedImageFolder decode_image_folder(const ImageFolderOptions& options) {
  if (options.channels != 0 && options.channels != 1 && options.channels != 3)
    throw ConfigError("/data/channels: expected 1, 3 or \"auto\", got " +
                      std::to_string(options.channels));
  if (options.image_size < 0)
    throw ConfigError("/data/image_size: expected a positive integer or \"auto\", got " +
                      std::to_string(options.image_size));
  const auto listing = detail::list_image_folder(options.root);
  const uint64_t key = detail::listing_key(listing, options.image_size, options.channels);
  const std::string path = options.cache_dir.empty() ? "" : cache_path(options.cache_dir, options);
  if (!path.empty()) {
    if (auto images = cached(path, key, listing, options.skip_bad_images)) {
      log_line("image_folder " + options.root + ": " + std::to_string(images->pixels.size(0)) +
               " decoded images from " + path);
      return with_listing(listing, std::move(*images), path, true);
    }
  }
  log_line("image_folder " + options.root + ": decoding " + std::to_string(listing.images.size()) +
           " images of " + std::to_string(listing.classes.size()) + " classes" +
           (listing.has_test_folder ? " (train/ and test/)" : ""));
  auto images = detail::decode_listing(
      listing, {options.image_size, options.channels, options.skip_bad_images});
  if (images.skipped > 0) {
    log_line("image_folder " + options.root + ": skipped " + std::to_string(images.skipped) +
             " unreadable image(s) of " + std::to_string(listing.images.size()) +
             " (data.skip_bad_images)");
  }
  if (!path.empty()) store(path, key, images);
  return with_listing(listing, std::move(images), path, false);
}

}  // namespace neuroflux::data
