// Pieces the micro-benchmark subcommands (bench-ops, bench-rowconv) share.
#pragma once

#include <ATen/Parallel.h>
#include <cxxopts.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "neuroflux/util/errors.h"

namespace neuroflux::cli {

/// The median of `v` (the mean of the middle two for an even count); robust to the odd slow
/// repeat on a shared machine.
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 == 1 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

/// Sets the intra-op threads from --threads (all hardware threads when absent) and returns the
/// count; `command` names the subcommand in the error for a non-positive value.
inline int64_t apply_bench_threads(const cxxopts::ParseResult& parsed, const std::string& command) {
  int64_t threads = static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency()));
  if (parsed.count("threads") != 0) {
    threads = parsed["threads"].as<int64_t>();
    if (threads <= 0)
      throw ConfigError(command + ": --threads must be positive, got " + std::to_string(threads));
  }
  at::set_num_threads(static_cast<int>(threads));
  return threads;
}

}  // namespace neuroflux::cli
