// Progress of long work: on a terminal a single line rewritten in place with rate and ETA; in a
// log (not a terminal) a plain line at most every `log_interval` seconds.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace neuroflux {

class Progress {
 public:
  /// `total` units of work (samples, batches); `unit` names them in the rate ("img/s").
  Progress(std::string label, int64_t total, std::string unit, double log_interval = 30.0);
  ~Progress();

  /// `done` units finished so far; `status` is appended (e.g. "loss 0.41").
  void update(int64_t done, const std::string& status = "");
  /// Ends the line with a summary.
  void finish(const std::string& status = "");

  static bool quiet();                 ///< NEUROFLUX_QUIET=1 silences progress (tests)
  static bool on_terminal();

 private:
  std::string render(int64_t done, const std::string& status) const;

  std::string label_, unit_;
  int64_t total_;
  double log_interval_;
  std::chrono::steady_clock::time_point start_, last_print_;
  bool finished_ = false, printed_ = false;
};

/// Seconds since construction, monotonic.
class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  void restart() { start_ = std::chrono::steady_clock::now(); }

 private:
  std::chrono::steady_clock::time_point start_;
};

/// Log line to stderr ("[neuroflux] ..."), unless quiet.
void log_line(const std::string& message);

}  // namespace neuroflux
