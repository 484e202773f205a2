// Helpers shared by the activation-cache tests.
#pragma once

#include <catch2/catch.hpp>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "temp_dir.h"

#include "neuroflux/util/errors.h"

namespace neuroflux::cache_test {

using neuroflux::test::TempDir;

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
