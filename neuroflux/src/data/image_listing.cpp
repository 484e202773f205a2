#include "data/image_listing.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <utility>

#include "neuroflux/util/errors.h"
#include "util/checksum.h"

namespace neuroflux::data::detail {
namespace {

namespace fs = std::filesystem;

// Dot names are the file system's or another tool's (.git, .ipynb_checkpoints, macOS's
// ._photo.jpg companions), never a class or an image.
bool hidden(const fs::path& path) { return path.filename().string().rfind('.', 0) == 0; }

[[noreturn]] void cannot_list(const fs::path& dir, const std::error_code& error) {
  throw DataError(dir.string() + ": cannot list the folder: " + error.message());
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : ", ") + name;
  return out.empty() ? "none" : out;
}

// The class folders of `dir`, sorted by name (byte order, as Python sorts UTF-8 names).
std::vector<std::string> class_folders(const fs::path& dir) {
  std::error_code error;
  fs::directory_iterator it(dir, error);
  if (error) cannot_list(dir, error);
  std::vector<std::string> names;
  for (; it != fs::directory_iterator(); it.increment(error)) {
    if (error) cannot_list(dir, error);
    std::error_code ignored;  // a dangling link is no class folder
    if (!hidden(it->path()) && it->is_directory(ignored))
      names.push_back(it->path().filename().string());
  }
  if (error) cannot_list(dir, error);
  std::sort(names.begin(), names.end());
  if (names.size() < 2) {
    throw ConfigError("/data/root: " + dir.string() + ": found " + std::to_string(names.size()) +
                      " class folder" + (names.size() == 1 ? " (" + names[0] + ")" : "s") +
                      "; expected at least 2, one per class");
  }
  return names;
}

// Every image below `class_dir` (sub-folders too, as torchvision's ImageFolder walks them), in
// its order: folder by folder, names sorted within each.
std::vector<fs::path> images_in(const fs::path& class_dir) {
  std::vector<std::pair<std::string, std::string>> found;  // (folder, name)
  std::error_code error;
  fs::recursive_directory_iterator it(class_dir, fs::directory_options::follow_directory_symlink,
                                      error);
  if (error) cannot_list(class_dir, error);
  for (; it != fs::recursive_directory_iterator(); it.increment(error)) {
    if (error) cannot_list(class_dir, error);
    std::error_code ignored;
    if (hidden(it->path())) {
      if (it->is_directory(ignored)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(ignored) && is_image_name(it->path().filename().string()))
      found.emplace_back(it->path().parent_path().string(), it->path().filename().string());
  }
  if (error) cannot_list(class_dir, error);
  std::sort(found.begin(), found.end());
  if (found.empty()) {
    throw ConfigError("/data/root: " + class_dir.string() +
                      ": the class folder holds no .jpg, .jpeg or .png image");
  }
  std::vector<fs::path> paths;
  paths.reserve(found.size());
  for (const auto& [folder, name] : found) paths.push_back(fs::path(folder) / name);
  return paths;
}

void list_split(const fs::path& root, const fs::path& dir, const std::vector<std::string>& classes,
                bool test, std::vector<ListedImage>& out) {
  for (size_t label = 0; label < classes.size(); ++label) {
    for (const auto& path : images_in(dir / classes[label])) {
      struct stat info {};
      if (::stat(path.c_str(), &info) != 0)
        throw DataError(path.string() + ": cannot read the image: " + std::strerror(errno));
      ListedImage image;
      image.path = path.string();
      image.relative = path.lexically_relative(root).string();
      image.label = static_cast<int64_t>(label);
      image.test = test;
      image.bytes = static_cast<int64_t>(info.st_size);
      image.mtime_ns = static_cast<int64_t>(info.st_mtim.tv_sec) * 1000000000 +
                       static_cast<int64_t>(info.st_mtim.tv_nsec);
      out.push_back(std::move(image));
    }
  }
}

template <typename T>
uint64_t hash_value(const T& value, uint64_t hash) {
  return fnv1a(&value, sizeof value, hash);
}

}  // namespace

bool is_image_name(const std::string& name) {
  const auto dot = name.rfind('.');
  if (dot == std::string::npos) return false;
  std::string ext = name.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == "jpg" || ext == "jpeg" || ext == "png";
}

ImageListing list_image_folder(const std::string& root_text) {
  if (root_text.empty()) {
    throw ConfigError(
        "/data/root: the image_folder data set has no default location; set "
        "data.root to a folder of class folders (ROOT/<class>/*.png), or of train/ "
        "and test/ that each hold them");
  }
  const fs::path root(root_text);
  std::error_code error;
  const auto status = fs::status(root, error);
  if (!fs::exists(status)) {
    throw ConfigError("/data/root: " + root_text + ": " +
                      (error && error != std::errc::no_such_file_or_directory ? error.message()
                                                                              : "no such folder"));
  }
  if (!fs::is_directory(status)) throw ConfigError("/data/root: " + root_text + ": not a folder");

  ImageListing listing;
  listing.root = root_text;
  const fs::path train = root / "train", test = root / "test";
  const bool has_train = fs::is_directory(train, error), has_test = fs::is_directory(test, error);
  if (has_train != has_test) {
    throw ConfigError("/data/root: " + root_text + " has " + (has_train ? "train/" : "test/") +
                      " but no " + (has_train ? "test/" : "train/") +
                      ": expected both (train/<class>/, test/<class>/) or class folders only");
  }
  listing.has_test_folder = has_train;
  if (!listing.has_test_folder) {
    listing.classes = class_folders(root);
    list_split(root, root, listing.classes, false, listing.images);
    return listing;
  }
  listing.classes = class_folders(train);
  const auto test_classes = class_folders(test);
  if (test_classes != listing.classes) {
    std::vector<std::string> only_train, only_test;
    std::set_difference(listing.classes.begin(), listing.classes.end(), test_classes.begin(),
                        test_classes.end(), std::back_inserter(only_train));
    std::set_difference(test_classes.begin(), test_classes.end(), listing.classes.begin(),
                        listing.classes.end(), std::back_inserter(only_test));
    throw ConfigError("/data/root: " + test.string() + ": its class folders differ from " +
                      train.string() + "'s (only in train/: " + joined(only_train) +
                      "; only in test/: " + joined(only_test) + ")");
  }
  list_split(root, train, listing.classes, false, listing.images);
  list_split(root, test, listing.classes, true, listing.images);
  return listing;
}

uint64_t listing_key(const ImageListing& listing, int64_t image_size, int64_t channels) {
  static const std::string kVersion = "neuroflux image_folder 1";
  uint64_t hash = fnv1a(kVersion.data(), kVersion.size());
  hash = hash_value(image_size, hash);
  hash = hash_value(channels, hash);
  hash = hash_value(listing.has_test_folder, hash);
  for (const auto& name : listing.classes) hash = fnv1a(name.c_str(), name.size() + 1, hash);
  for (const auto& image : listing.images) {
    hash = fnv1a(image.relative.c_str(), image.relative.size() + 1, hash);
    hash = hash_value(image.label, hash);
    hash = hash_value(image.test, hash);
    hash = hash_value(image.bytes, hash);
    hash = hash_value(image.mtime_ns, hash);
  }
  return hash;
}

}  // namespace neuroflux::data::detail
