#include "neuroflux/util/progress.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace neuroflux {
namespace {

std::string clock_text(double seconds) {
  if (seconds < 0 || seconds > 1e7) return "?";
  const auto s = static_cast<long long>(seconds + 0.5);
  char buffer[32];
  if (s >= 3600) std::snprintf(buffer, sizeof buffer, "%lldh%02lldm", s / 3600, (s / 60) % 60);
  else std::snprintf(buffer, sizeof buffer, "%lldm%02llds", s / 60, s % 60);
  return buffer;
}

}  // namespace

bool Progress::quiet() {
  const char* q = std::getenv("NEUROFLUX_QUIET");
  return q != nullptr && q[0] != '\0' && q[0] != '0';
}

bool Progress::on_terminal() { return ::isatty(STDERR_FILENO) == 1; }

void log_line(const std::string& message) {
  if (Progress::quiet()) return;
  std::fprintf(stderr, "[neuroflux] %s\n", message.c_str());
  std::fflush(stderr);
}

Progress::Progress(std::string label, int64_t total, std::string unit, double log_interval)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total),
      log_interval_(log_interval), start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

Progress::~Progress() {
  if (printed_ && !finished_ && on_terminal() && !quiet()) std::fprintf(stderr, "\n");
}

std::string Progress::render(int64_t done, const std::string& status) const {
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : -1.0;
  char buffer[256];
  std::snprintf(buffer, sizeof buffer, "%s %3.0f%% %lld/%lld %.0f %s elapsed %s ETA %s",
                label_.c_str(), total_ > 0 ? 100.0 * done / total_ : 100.0,
                static_cast<long long>(done), static_cast<long long>(total_), rate,
                unit_.c_str(), clock_text(elapsed).c_str(), clock_text(eta).c_str());
  std::string line = buffer;
  if (!status.empty()) line += "  " + status;
  return line;
}

void Progress::update(int64_t done, const std::string& status) {
  if (quiet()) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_print_).count();
  if (on_terminal()) {
    if (since < 0.25 && printed_) return;
    std::fprintf(stderr, "\r\033[K%s", render(done, status).c_str());
  } else {
    if (since < log_interval_) return;
    std::fprintf(stderr, "[neuroflux] %s\n", render(done, status).c_str());
  }
  std::fflush(stderr);
  last_print_ = now;
  printed_ = true;
}

void Progress::finish(const std::string& status) {
  if (finished_) return;
  finished_ = true;
  if (quiet()) return;
  if (on_terminal()) std::fprintf(stderr, "\r\033[K%s\n", render(total_, status).c_str());
  else std::fprintf(stderr, "[neuroflux] %s\n", render(total_, status).c_str());
  std::fflush(stderr);
}

}  // namespace neuroflux
