#include "neuroflux/report/run_summary.h"

#include <cstdio>
#include <utility>
#include <vector>

#include "neuroflux/util/size_format.h"

namespace neuroflux {
namespace {

constexpr int kLabelWidth = 11;
constexpr size_t kLineWidth = 100;

std::string printf_string(const char* format, double a, double b = 0) {
  char buffer[128];
  std::snprintf(buffer, sizeof buffer, format, a, b);
  return buffer;
}

/// "1.2 MiB (1258291 bytes)" as format_size writes it, but with the count grouped.
std::string size_text(int64_t bytes) {
  std::string text = format_size(bytes);
  if (text.find("MiB") != std::string::npos || text.find("KiB") != std::string::npos ||
      text.find("GiB") != std::string::npos || text.find("TiB") != std::string::npos)
    text += " (" + thousands(bytes) + " bytes)";
  return text;
}

std::string units_text(int64_t first, int64_t last) {
  return first == last ? std::to_string(first) : std::to_string(first) + "-" + std::to_string(last);
}

std::string seconds_text(double seconds) {
  std::string text = printf_string("%.1f s", seconds);
  if (seconds >= 60) {
    const auto whole = static_cast<long long>(seconds + 0.5);
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, " (%lld min %02lld s)", whole / 60, whole % 60);
    text += buffer;
  }
  return text;
}

/// `items` joined with `separator`, wrapped so no line passes kLineWidth; continuation lines
/// start in the value column.
std::string wrap(const std::vector<std::string>& items, const std::string& separator,
                 const std::string& first) {
  const size_t indent = 2 + kLabelWidth + 1;
  std::string out = first, line = first;
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string piece = items[i] + (i + 1 < items.size() ? separator : "");
    if (!line.empty() && indent + line.size() + piece.size() > kLineWidth) {
      while (!out.empty() && out.back() == ' ') out.pop_back();
      out += "\n" + std::string(indent, ' ');
      line.clear();
    }
    out += piece;
    line += piece;
  }
  return out;
}

}  // namespace

std::string thousands(int64_t value) {
  std::string digits = std::to_string(value);
  const int sign = value < 0 ? 1 : 0;
  for (int i = static_cast<int>(digits.size()) - 3; i > sign; i -= 3)
    digits.insert(static_cast<size_t>(i), ",");
  return digits;
}

std::string run_summary(const Report& r, const std::string& run_dir) {
  std::vector<std::pair<std::string, std::string>> rows;
  const bool whole_network =
      r.method == "backprop" || (r.method == "local" && r.blocks.size() <= 1);

  std::string what = r.model + " on " + r.dataset + ", " + r.device;
  if (r.extra.contains("world_size"))
    what += ", " + std::to_string(r.extra["world_size"].get<int64_t>()) + " ranks";
  rows.push_back({"method", r.method + " (" + what + ")"});
  rows.push_back({"test acc", printf_string("%.4f (validation %.4f)", r.final.test_accuracy,
                                            r.final.val_accuracy)});

  std::string peak = size_text(r.peak_memory_bytes);
  if (r.budget_bytes && *r.budget_bytes > 0) {
    const double ratio =
        static_cast<double>(r.peak_memory_bytes) / static_cast<double>(*r.budget_bytes);
    peak += printf_string(", %.2f of the budget", ratio);
    if (ratio > 1) peak += " (OVER)";
  }
  rows.push_back({"peak", peak});
  rows.push_back({"budget", r.budget_bytes ? size_text(*r.budget_bytes) : "none"});

  std::string time = seconds_text(r.train_seconds) + " training";
  if (r.eval_seconds > 0) time += printf_string(", %.1f s evaluation", r.eval_seconds);
  time += ", " + std::to_string(r.epochs) + (r.epochs == 1 ? " epoch" : " epochs");
  rows.push_back({"time", time});

  if (whole_network && r.blocks.size() == 1) {
    const BlockReport& b = r.blocks.front();
    rows.push_back({"batch", std::to_string(b.batch_size) + " (the whole network, units " +
                                 units_text(b.first_unit, b.last_unit) + ")"});
  } else if (!r.blocks.empty()) {
    const bool stages = r.extra.contains("pipeline");
    std::vector<std::string> items;
    for (const auto& b : r.blocks)
      items.push_back(units_text(b.first_unit, b.last_unit) + ":" + std::to_string(b.batch_size));
    const char* noun = stages ? " stage" : " block";
    std::string first = std::to_string(r.blocks.size()) + noun + (r.blocks.size() == 1 ? "" : "s") +
                        " (units:batch) ";
    std::string text = wrap(items, "  ", first);
    if (r.extra.contains("untrained_units") && r.extra["untrained_units"].is_array() &&
        !r.extra["untrained_units"].empty()) {
      const auto& untrained = r.extra["untrained_units"];
      text += "; units " +
              units_text(untrained.front().get<int64_t>(), untrained.back().get<int64_t>()) +
              " untrained (progressive exit)";
    }
    rows.push_back({stages ? "stages" : "blocks", text});
  }

  std::string exit =
      "unit " + std::to_string(r.final.exit_unit) + ": " + thousands(r.final.params) + " params";
  if (r.full_model_params > 0 && r.final.params != r.full_model_params)
    exit +=
        printf_string(", %.2fx the full model's ", static_cast<double>(r.final.params) /
                                                       static_cast<double>(r.full_model_params)) +
        thousands(r.full_model_params);
  else
    exit += " (the whole network)";
  rows.push_back({"exit", exit});

  const std::string dir = run_dir.empty() ? "." : run_dir;
  rows.push_back({"run dir", dir + "/"});
  rows.push_back({"report", dir + "/report.json (history.csv, config.json beside it)"});
  const bool full_saved = r.method == "neuroflux";
  rows.push_back({"model", dir + "/model.pt" + (full_saved ? " (full model: full_model.pt)" : "")});

  std::string out = "run summary\n";
  for (const auto& [label, value] : rows) {
    std::string padded = label;
    padded.resize(kLabelWidth, ' ');
    out += "  " + padded + " " + value + "\n";
  }
  return out;
}

}  // namespace neuroflux
