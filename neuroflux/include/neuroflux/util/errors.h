// Error types that reach the user. Each carries the process exit code the CLI returns for it, so
// scripts can tell a bad config (2) from a bad data file (3) from an impossible budget (4).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace neuroflux {

enum class ExitCode : int {
  kOk = 0,
  kFailure = 1,      ///< anything unexpected
  kBadInput = 2,     ///< malformed config, unknown key, wrong type, bad command line
  kBadData = 3,      ///< missing, truncated or corrupt data / cache / checkpoint file
  kOverBudget = 4,   ///< no batch size or plan fits memory.budget
  kPeerFailure = 5,  ///< another rank of a distributed run died, hung or was unreachable
};

class Error : public std::runtime_error {
 public:
  Error(const std::string& message, ExitCode code = ExitCode::kFailure)
      : std::runtime_error(message), code_(code) {}
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

/// A config value that is missing, of the wrong type or out of range; the message starts with
/// the value's JSON pointer ("/train/epochs: expected a positive integer, got -3").
class ConfigError : public Error {
 public:
  explicit ConfigError(const std::string& message) : Error(message, ExitCode::kBadInput) {}
};

/// A data, cache or checkpoint file that cannot be read; the message names the file and where.
class DataError : public Error {
 public:
  explicit DataError(const std::string& message) : Error(message, ExitCode::kBadData) {}
};

/// No configuration fits the memory budget. `smallest_feasible_bytes` is the smallest budget that
/// would have worked (0 when unknown).
class BudgetError : public Error {
 public:
  BudgetError(const std::string& message, int64_t smallest_feasible_bytes)
      : Error(message, ExitCode::kOverBudget), smallest_feasible_bytes_(smallest_feasible_bytes) {}
  int64_t smallest_feasible_bytes() const { return smallest_feasible_bytes_; }

 private:
  int64_t smallest_feasible_bytes_;
};

}  // namespace neuroflux
