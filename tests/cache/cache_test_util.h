// Helpers shared by the activation-cache tests.
#pragma once

#include <catch2/catch.hpp>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "neuroflux/util/errors.h"

namespace neuroflux::cache_test {

/// A fresh directory under the system temp directory, removed with its contents.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("neuroflux-cache-test-" + std::to_string(::getpid()) + "-" +
             std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string file(const std::string& name) const { return (path_ / name).string(); }
  /// Names of the files in the directory.
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(path_)) {
      names.push_back(e.path().filename().string());
    }
    return names;
  }

 private:
  std::filesystem::path path_;
};

/// The message of the DataError that `f` throws; the test fails if it throws none (any other
/// exception propagates and fails it too).
inline std::string data_error_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const neuroflux::DataError& e) {
    CHECK(e.code() == neuroflux::ExitCode::kBadData);
    return e.what();
  }
  FAIL("expected a neuroflux::DataError");
  return {};
}

}  // namespace neuroflux::cache_test
