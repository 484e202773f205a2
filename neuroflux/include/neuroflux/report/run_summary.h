// The table `neuroflux train` ends with: what ran, how well, in how much memory and time, what
// was exported and where the files are, all read off the run's Report.
#pragma once

#include <string>

#include "neuroflux/report/report.h"

namespace neuroflux {

/// A compact two-column table, one "  label  value" line per item (values start in one column),
/// ending with a newline. `run_dir` is the run's output directory (report.json's folder).
std::string run_summary(const Report& report, const std::string& run_dir);

/// 1234567 -> "1,234,567".
std::string thousands(int64_t value);

}  // namespace neuroflux
