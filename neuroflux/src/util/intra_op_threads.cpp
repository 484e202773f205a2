#include "neuroflux/util/intra_op_threads.h"

#include <ATen/Parallel.h>

namespace neuroflux {

IntraOpThreads::IntraOpThreads(int64_t threads) : previous_(at::get_num_threads()) {
  if (threads > 0 && threads != previous_) at::set_num_threads(static_cast<int>(threads));
}

IntraOpThreads::~IntraOpThreads() {
  if (at::get_num_threads() != previous_) at::set_num_threads(previous_);
}

std::vector<int64_t> thread_counts_below(int64_t threads) {
  std::vector<int64_t> counts;
  if (threads / 2 > 1) counts.push_back(threads / 2);
  if (threads > 1) counts.push_back(1);
  return counts;
}

}  // namespace neuroflux
