#include "neuroflux/util/cpu_usage.h"

#include <sys/resource.h>

namespace neuroflux {
namespace {

double seconds_of(const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec * 1e-6; }

}  // namespace

CpuUsage CpuUsage::of_process() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return {};  // only EFAULT/EINVAL, neither possible here
  return {seconds_of(usage.ru_utime), seconds_of(usage.ru_stime), usage.ru_minflt};
}

CpuUsage CpuUsage::operator-(const CpuUsage& earlier) const {
  return {user_seconds - earlier.user_seconds, system_seconds - earlier.system_seconds,
          minor_faults - earlier.minor_faults};
}

}  // namespace neuroflux
