// What an image folder holds, before any image is opened: its layout (train/ + test/, or class
// folders only), its classes in sorted order, and every JPEG and PNG with the size and
// modification time that key the decoded cache. Layout problems are ConfigErrors (exit 2)
// naming the folder; a folder that cannot be read is a DataError (exit 3).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace neuroflux::data::detail {

struct ListedImage {
  std::string path;      ///< as opened: root joined with `relative`
  std::string relative;  ///< below the root ("train/cat/0001.jpg", "cat/0001.jpg")
  int64_t label = 0;     ///< index of its class folder in sorted order
  bool test = false;     ///< under root/test/
  int64_t bytes = 0;
  int64_t mtime_ns = 0;
};

struct ImageListing {
  std::string root;
  bool has_test_folder = false;      ///< root/train/<class>/ and root/test/<class>/
  std::vector<std::string> classes;  ///< sorted; a class's index is its label
  std::vector<ListedImage> images;   ///< class by class, files sorted; train before test
};

/// True for the names image_folder reads: .jpg, .jpeg, .png in any case.
bool is_image_name(const std::string& name);

/// Lists `root`; see the header comment for what it refuses.
ImageListing list_image_folder(const std::string& root);

/// A key for everything decoding depends on: each image's relative path, label, split, size and
/// modification time, plus the options that shape the pixels. A changed folder changes the key.
uint64_t listing_key(const ImageListing& listing, int64_t image_size, int64_t channels);

}  // namespace neuroflux::data::detail
