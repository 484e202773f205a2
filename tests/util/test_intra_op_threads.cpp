#include <catch2/catch.hpp>

#include <ATen/Parallel.h>

#include <stdexcept>

#include "neuroflux/util/intra_op_threads.h"

using namespace neuroflux;

TEST_CASE("a scoped thread count is handed back however the scope ends", "[util][unit]") {
  const IntraOpThreads outer(2);
  CHECK(at::get_num_threads() == 2);
  {
    const IntraOpThreads inner(1);
    CHECK(at::get_num_threads() == 1);
  }
  CHECK(at::get_num_threads() == 2);
  try {
    const IntraOpThreads inner(1);
    throw std::runtime_error("a block that fails");
  } catch (const std::runtime_error&) {
  }
  CHECK(at::get_num_threads() == 2);
  {
    const IntraOpThreads unchanged(0);  // a plan block without a count
    CHECK(at::get_num_threads() == 2);
  }
}

TEST_CASE("the fewer thread counts worth profiling: half and one", "[util][unit]") {
  CHECK(thread_counts_below(1).empty());
  CHECK(thread_counts_below(2) == std::vector<int64_t>{1});
  CHECK(thread_counts_below(3) == std::vector<int64_t>{1});
  CHECK(thread_counts_below(8) == std::vector<int64_t>{4, 1});
}
