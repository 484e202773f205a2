#include "neuroflux/util/phase_peaks.h"

#include <algorithm>

namespace neuroflux {

namespace {

void keep_larger(std::map<std::string, int64_t>& peaks, const std::string& name, int64_t bytes) {
  auto [it, inserted] = peaks.emplace(name, bytes);
  if (!inserted) it->second = std::max(it->second, bytes);
}

}  // namespace

void PhasePeaks::record(const std::string& phase, int64_t bytes) {
  keep_larger(phases_, phase, bytes);
}

void PhasePeaks::record_probe(const std::string& probe, int64_t bytes) {
  keep_larger(probes_, probe, bytes);
}

void PhasePeaks::record_limit(const std::string& phase, std::optional<int64_t> limit) {
  auto [it, inserted] = limits_.emplace(phase, limit);
  if (inserted || !it->second) return;
  it->second = limit ? std::optional<int64_t>(std::max(*it->second, *limit)) : std::nullopt;
}

void PhasePeaks::merge(const PhasePeaks& other) {
  for (const auto& [name, bytes] : other.phases_) record(name, bytes);
  for (const auto& [name, bytes] : other.probes_) record_probe(name, bytes);
  for (const auto& [name, limit] : other.limits_) record_limit(name, limit);
}

int64_t PhasePeaks::max() const {
  int64_t largest = 0;
  for (const auto& entry : phases_) largest = std::max(largest, entry.second);
  return largest;
}

}  // namespace neuroflux
