#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "neuroflux/util/errors.h"
#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/train/batch_size_search.h"

using neuroflux::MemoryMeter;

TEST_CASE("the batch-size search finds the largest fitting batch", "[train][unit]") {
  MemoryMeter& meter = MemoryMeter::cpu();
  // A trial whose peak is exactly 4 KiB per sample on top of what is live.
  auto trial = [](int64_t b) { at::Tensor t = torch::empty({b, 1024}, torch::kFloat); };
  const int64_t base = meter.current();
  const auto fit = neuroflux::largest_fitting_batch(meter, base + 100 * 4096 + 100, 1000, trial,
                                                    "test");
  CHECK(fit.batch_size == 100);
  CHECK(fit.peak_bytes - base == 100 * 4096);

  try {
    neuroflux::largest_fitting_batch(meter, base + 1000, 1000, trial, "test");
    FAIL("a budget below one sample must be refused");
  } catch (const neuroflux::BudgetError& e) {
    CHECK(e.smallest_feasible_bytes() == base + 2 * 4096);
    CHECK(std::string(e.what()).find("smallest budget") != std::string::npos);
  }
  CHECK_THROWS_AS(neuroflux::require_batch_fits(meter, base + 10 * 4096, 11, trial, "test"),
                  neuroflux::BudgetError);
  CHECK(neuroflux::require_batch_fits(meter, base + 10 * 4096, 10, trial, "test").batch_size == 10);
}
