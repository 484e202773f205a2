// A scoped intra-op thread count: ATen's is process-wide, and a block or a profiling step that
// runs with fewer threads must hand the run's count back however it ends.
#pragma once

#include <cstdint>
#include <vector>

namespace neuroflux {

class IntraOpThreads {
 public:
  /// Sets `threads` (> 0) until destroyed; 0 leaves the count as it is.
  explicit IntraOpThreads(int64_t threads);
  ~IntraOpThreads();
  IntraOpThreads(const IntraOpThreads&) = delete;
  IntraOpThreads& operator=(const IntraOpThreads&) = delete;

 private:
  int previous_;
};

/// The fewer counts worth profiling below `threads`: half of it and 1, descending, distinct.
std::vector<int64_t> thread_counts_below(int64_t threads);

}  // namespace neuroflux
