// What the process spent on the CPU over a stretch of work: user and kernel time of all its
// threads, and the page faults it took. Kernel time that grows with page faults is the sign of
// memory going back to the system and being faulted in again.
#pragma once

#include <cstdint>

namespace neuroflux {

struct CpuUsage {
  double user_seconds = 0;
  double system_seconds = 0;
  int64_t minor_faults = 0;

  /// Totals of this process since it started (getrusage(RUSAGE_SELF)).
  static CpuUsage of_process();
  CpuUsage operator-(const CpuUsage& earlier) const;
};

}  // namespace neuroflux
