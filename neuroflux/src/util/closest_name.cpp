#include "neuroflux/util/closest_name.h"

#include <algorithm>
#include <cctype>
#include <limits>

namespace neuroflux {
namespace {

std::string lowercase_of(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_prefix(const std::string& shorter, const std::string& longer) {
  return shorter.size() >= 3 && shorter.size() <= longer.size() &&
         longer.compare(0, shorter.size(), shorter) == 0;
}

}  // namespace

size_t edit_distance(const std::string& a_in, const std::string& b_in) {
  // Optimal string alignment: Levenshtein plus transpositions of adjacent characters, three rows.
  const std::string a = lowercase_of(a_in), b = lowercase_of(b_in);
  const size_t n = a.size(), m = b.size();
  std::vector<size_t> before(m + 1), previous(m + 1), current(m + 1);
  for (size_t j = 0; j <= m; ++j) previous[j] = j;
  for (size_t i = 1; i <= n; ++i) {
    current[0] = i;
    for (size_t j = 1; j <= m; ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        current[j] = std::min(current[j], before[j - 2] + 1);
    }
    before.swap(previous);
    previous.swap(current);
  }
  return previous[m];
}

std::optional<std::string> closest_name(const std::string& name,
                                        const std::vector<std::string>& candidates) {
  const size_t limit = std::max<size_t>(1, name.size() / 3);
  const std::string lowered = lowercase_of(name);
  std::optional<std::string> best;
  size_t best_distance = std::numeric_limits<size_t>::max();
  for (const auto& candidate : candidates) {
    const size_t d = edit_distance(name, candidate);
    const std::string c = lowercase_of(candidate);
    const bool close = d <= limit || is_prefix(c, lowered) || is_prefix(lowered, c);
    if (close && d < best_distance) {
      best = candidate;
      best_distance = d;
    }
  }
  return best;
}

std::string did_you_mean(const std::string& name, const std::vector<std::string>& candidates,
                         const std::string& prefix) {
  const auto best = closest_name(name, candidates);
  return best ? "; did you mean '" + prefix + *best + "'?" : "";
}

}  // namespace neuroflux
