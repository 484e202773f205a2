#include "cache/owned_directory.h"

#include <filesystem>

#include "neuroflux/errors.h"
#include "neuroflux/util/atomic_file.h"

namespace neuroflux {
namespace fs = std::filesystem;
namespace {

constexpr const char* kMarker = ".neuroflux-run";

}  // namespace

void create_owned_directory(const std::string& dir) {
  const fs::path marker = fs::path(dir) / kMarker;
  std::error_code error;
  if (fs::exists(marker, error)) return;
  fs::create_directories(dir, error);
  if (error) throw Error(dir + ": cannot create the cache directory: " + error.message());
  write_file_atomic(marker.string(),
                    "Made by a NeuroFlux run for its activation caches; the run removes this "
                    "directory when it ends.\n");
}

bool remove_owned_directory(const std::string& dir) {
  std::error_code error;
  if (!fs::exists(fs::path(dir) / kMarker, error)) return false;
  fs::remove_all(dir, error);
  return !error;
}

}  // namespace neuroflux
