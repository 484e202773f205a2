#include "cache/owned_directory.h"

#include <filesystem>

#include "neuroflux/util/errors.h"
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
  // An existing directory without the mark is someone else's: marking it would hand its files
  // to this run's cleanup. Only an empty one (made for the run, say) is taken over.
  if (fs::exists(dir, error) && (!fs::is_directory(dir, error) || !fs::is_empty(dir, error)))
    throw DataError(dir + ": exists and was not made by a NeuroFlux run (no " + kMarker +
                    " in it); the run would remove it when it ends, so it refuses to use it. "
                    "Remove it or choose another neuroflux.cache.dir or output directory");
  fs::create_directories(dir, error);
  if (error) throw DataError(dir + ": cannot create the cache directory: " + error.message());
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
