// The intended errors of a custom operator: its own argument checks, TORCH_CHECKs whose message
// starts with the operator's name. Any other exception (an ATen error from deeper down, which
// means a check let bad input through; an internal assert; std::bad_alloc) is a finding.
#pragma once

#include <c10/util/Exception.h>

#include <string>
#include <vector>

#include "fuzz_support.h"

namespace neuroflux::fuzz {

/// Calls `f`; returns normally when it succeeds or fails one of the checks of the operators
/// named in `ops`, aborts otherwise.
template <typename F>
void expect_op_errors(const std::vector<std::string>& ops, F&& f) {
  try {
    f();
  } catch (const c10::Error& e) {
    const std::string message = e.what_without_backtrace();
    const bool internal = message.find("INTERNAL ASSERT") != std::string::npos;
    for (const auto& op : ops)
      if (!internal && message.rfind(op, 0) == 0) return;
    escaped(e);
  } catch (const std::exception& e) {
    escaped(e);
  }
}

}  // namespace neuroflux::fuzz
