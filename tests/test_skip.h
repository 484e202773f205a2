// Tests that cannot run here say so instead of passing. NEUROFLUX_SKIP(reason) ends the test case
// with a warning and records it as skipped; when every test case of a run skipped itself, the
// runner (main.cpp) exits with kSkipExitCode, which CTest's SKIP_RETURN_CODE reports as "Skipped"
// rather than "Passed". A CUDA test without a GPU:
//
//   if (!torch::cuda::is_available()) NEUROFLUX_SKIP("no CUDA device");
#pragma once

#include <catch2/catch.hpp>

namespace neuroflux::test {

/// The exit code of a run in which every test case skipped itself (SKIP_RETURN_CODE in CTest).
constexpr int kSkipExitCode = 4;

/// Marks the running test case as skipped (NEUROFLUX_SKIP calls it).
void note_skipped();

}  // namespace neuroflux::test

#define NEUROFLUX_SKIP(reason)           \
  do {                                   \
    WARN(reason << ": skipped");         \
    ::neuroflux::test::note_skipped();   \
    return;                              \
  } while (0)
