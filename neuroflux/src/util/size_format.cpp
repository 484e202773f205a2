#include "neuroflux/util/size_format.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace neuroflux {
namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::optional<int64_t> parse_size(const std::string& text) {
  const std::string t = lower(text);
  if (t == "none" || t == "unbounded" || t == "null") return std::nullopt;
  size_t consumed = 0;
  double number = 0;
  try {
    number = std::stod(t, &consumed);
  } catch (const std::exception&) {
    throw std::invalid_argument("expected a size such as \"64MiB\", \"1.5GiB\", a byte count or "
                                "\"none\", got \"" + text + "\"");
  }
  std::string unit = t.substr(consumed);
  while (!unit.empty() && unit.front() == ' ') unit.erase(unit.begin());
  double scale = 0;
  if (unit.empty() || unit == "b") scale = 1;
  else if (unit == "k" || unit == "kib") scale = 1024.0;
  else if (unit == "m" || unit == "mib") scale = 1024.0 * 1024;
  else if (unit == "g" || unit == "gib") scale = 1024.0 * 1024 * 1024;
  else if (unit == "t" || unit == "tib") scale = 1024.0 * 1024 * 1024 * 1024;
  else if (unit == "kb") scale = 1e3;
  else if (unit == "mb") scale = 1e6;
  else if (unit == "gb") scale = 1e9;
  else if (unit == "tb") scale = 1e12;
  else
    throw std::invalid_argument("unknown size unit \"" + unit + "\" in \"" + text +
                                "\" (use B, KiB, MiB, GiB, KB, MB or GB)");
  const double bytes = number * scale;
  // Compared after rounding: "0.4" is below one byte, a budget of 0.
  if (!std::isfinite(bytes) || bytes < 0.5 || bytes > 9.2e18)
    throw std::invalid_argument("expected a positive size, got \"" + text + "\"");
  return static_cast<int64_t>(std::llround(bytes));
}

std::string format_size(int64_t bytes, bool with_bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int u = 0;
  while (std::fabs(value) >= 1024.0 && u < 4) {
    value /= 1024.0;
    ++u;
  }
  char buffer[64];
  if (u == 0) std::snprintf(buffer, sizeof buffer, "%lld B", static_cast<long long>(bytes));
  else std::snprintf(buffer, sizeof buffer, "%.1f %s", value, units[u]);
  std::string out = buffer;
  if (with_bytes && u > 0) out += " (" + std::to_string(bytes) + " bytes)";
  return out;
}

std::string shape_string(c10::ArrayRef<int64_t> shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

}  // namespace neuroflux
