// Which ATen operators hold the memory at a step's peak. The profiler fits a unit's transient
// memory as one number; an AllocationTrace says what it is made of: every allocation of the CPU
// tracking allocator while the trace lives is labelled with the operator that made it (from
// ATen's RecordFunction), and the live bytes per operator are kept from the highest point.
// `neuroflux profile --allocations` prints them per unit step. CPU only: the CUDA caching
// allocator has no such hook here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace neuroflux {

/// Live bytes one operator held at the peak, in how many allocations.
struct OperatorBytes {
  std::string op;
  int64_t bytes = 0;
  int64_t allocations = 0;
};

/// What was live at a traced step's peak.
struct AllocationsAtPeak {
  int64_t batch = 0;
  /// Bytes allocated before the trace began and still live at the peak (weights, gradients,
  /// optimizer state, the input batch).
  int64_t before_bytes = 0;
  /// Bytes allocated during the trace and live at the peak: the step's transient peak.
  int64_t traced_bytes = 0;
  /// Those bytes by operator, largest first.
  std::vector<OperatorBytes> by_operator;
};

/// While alive, labels the tracked CPU allocations of every thread with the operator running on
/// the thread that made them. One trace at a time; it costs a map insert per allocation, so it is
/// for diagnosis only (no trace runs unless asked for).
class AllocationTrace {
 public:
  /// Label of an allocation made on a thread where no operator was running (an intra-op worker,
  /// code that calls the allocator directly).
  static constexpr const char* kNoOperator = "(no operator)";

  AllocationTrace();  ///< throws std::logic_error while another trace is alive
  ~AllocationTrace();
  AllocationTrace(const AllocationTrace&) = delete;
  AllocationTrace& operator=(const AllocationTrace&) = delete;

  /// The live allocations at the highest point of before + traced bytes so far.
  AllocationsAtPeak at_peak() const;

  /// The label of an operator stack, outermost first: the outermost operator (what the calling
  /// code ran, or the autograd node in backward) and, when different, the innermost one that is
  /// not a plain allocation (aten::empty and its kin say nothing about who needed the memory).
  static std::string label_of(const std::vector<std::string>& stack);

  struct State;

 private:
  std::unique_ptr<State> state_;
  uint64_t callback_ = 0;
};

}  // namespace neuroflux
