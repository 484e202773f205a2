#include "bench_table.h"

#include <algorithm>
#include <cstdio>

#include "neuroflux/report/run_summary.h"
#include "neuroflux/util/size_format.h"

namespace neuroflux::cli {
namespace {

std::string fixed(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

std::string batches(const std::vector<int64_t>& sizes) {
  std::string out = "[";
  for (size_t i = 0; i < sizes.size(); ++i) out += (i ? "," : "") + std::to_string(sizes[i]);
  return out + "]";
}

}  // namespace

std::string format_bench_table(const std::vector<BenchTableRow>& rows,
                               std::optional<int64_t> budget_bytes, double target_accuracy) {
  const std::vector<std::string> header = {"method", "test acc", "time to target",
                                           "peak / budget", "exported params", "batch sizes"};
  std::vector<std::vector<std::string>> cells = {header};
  std::vector<std::string> failures;
  for (const auto& row : rows) {
    if (!row.measured) {
      cells.push_back({row.method, row.failure});
      continue;
    }
    std::string time = row.time_to_target_seconds ? fixed(*row.time_to_target_seconds, 1) + " s"
                                                   : "never";
    if (row.speedup_vs_backprop && row.method != "backprop")
      time += " (" + fixed(*row.speedup_vs_backprop, 2) + "x)";
    std::string peak = format_size(row.peak_memory_bytes);
    if (budget_bytes) {
      peak += " / " + format_size(*budget_bytes) + " (" +
              fixed(100.0 * static_cast<double>(row.peak_memory_bytes) /
                        static_cast<double>(*budget_bytes), 0) + "%)";
    }
    std::string params = thousands(row.exported_params);
    if (row.full_model_params > 0 && row.exported_params < row.full_model_params)
      params += " of " + thousands(row.full_model_params);
    cells.push_back({row.method, fixed(row.test_accuracy, 4), time, peak, params,
                     batches(row.batch_sizes)});
  }
  std::vector<size_t> width(header.size(), 0);
  // A row that was not measured has its name and one free-text cell: only its name counts.
  for (const auto& line : cells)
    for (size_t c = 0; c < line.size(); ++c)
      if (line.size() == header.size() || c == 0) width[c] = std::max(width[c], line[c].size());
  std::string out = "target validation accuracy " + fixed(target_accuracy, 4) + ", budget " +
                    (budget_bytes ? format_size(*budget_bytes, true) : std::string("none")) +
                    "\n";
  for (const auto& line : cells) {
    std::string text;
    for (size_t c = 0; c < line.size(); ++c) {
      text += line[c];
      if (c + 1 < line.size()) text += std::string(width[c] - line[c].size() + 2, ' ');
    }
    out += text + "\n";
  }
  return out;
}

}  // namespace neuroflux::cli
