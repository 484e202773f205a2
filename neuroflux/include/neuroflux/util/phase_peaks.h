// The peak device bytes of each named phase of a run (report.json's `phase_peaks`), and apart
// from them the peaks of unbudgeted probes: measurements that had to run without the limit (what
// a refused batch would need), which are no part of the run's budgeted working set.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace neuroflux {

class PhasePeaks {
 public:
  /// A phase measured more than once (every epoch's validation, every block's training) keeps
  /// its largest peak.
  void record(const std::string& phase, int64_t bytes);
  /// The limit `phase` ran under in this process (MeasuredPhase notes it each time): the loosest
  /// one it ever had, nullopt once it ran without any. Not saved: for tests that no phase ran
  /// past the budget.
  void record_limit(const std::string& phase, std::optional<int64_t> limit);
  void record_probe(const std::string& probe, int64_t bytes);
  /// Every phase and probe of `other`, each kept at the larger of the two peaks.
  void merge(const PhasePeaks& other);

  /// The largest phase peak (0 when none was recorded): the run's peak_memory_bytes. Probes are
  /// not phases and do not count.
  int64_t max() const;
  bool empty() const { return phases_.empty(); }
  const std::map<std::string, int64_t>& phases() const { return phases_; }
  const std::map<std::string, int64_t>& probes() const { return probes_; }
  const std::map<std::string, std::optional<int64_t>>& limits() const { return limits_; }

 private:
  std::map<std::string, int64_t> phases_;
  std::map<std::string, int64_t> probes_;
  std::map<std::string, std::optional<int64_t>> limits_;
};

}  // namespace neuroflux
