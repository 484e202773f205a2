// The table `neuroflux bench` ends with on the terminal: one row per method, the few columns a
// newcomer compares (accuracy, time to the target, peak against the budget, exported size).
// The full table, every column, is DIR/bench.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace neuroflux::cli {

struct BenchTableRow {
  std::string method;
  /// Set when the method was measured; otherwise `failure` says why ("does not fit: ...").
  bool measured = false;
  std::string failure;
  double test_accuracy = 0;
  std::optional<double> time_to_target_seconds;
  std::optional<double> speedup_vs_backprop;
  int64_t peak_memory_bytes = 0;
  int64_t exported_params = 0;
  int64_t full_model_params = 0;
  std::vector<int64_t> batch_sizes;
};

/// Aligned columns: method, test acc, time to target, peak / budget, exported params, batches.
std::string format_bench_table(const std::vector<BenchTableRow>& rows,
                               std::optional<int64_t> budget_bytes, double target_accuracy);

}  // namespace neuroflux::cli
