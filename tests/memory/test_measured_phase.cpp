// MeasuredPhase: the one way a run measures a phase (limit, peak, record). Each check here fails
// if the helper stops setting the limit, loses a peak, keeps the smaller of two, or leaks its
// limit past an exception.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <stdexcept>

#include "neuroflux/memory/measured_phase.h"

using neuroflux::MeasuredPhase;
using neuroflux::MemoryMeter;
using neuroflux::PhasePeaks;
using neuroflux::UnbudgetedProbe;

namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

/// Allocates and frees `bytes` (a multiple of 4) of float32.
void touch(int64_t bytes) { at::Tensor t = torch::empty({bytes / 4}, torch::kFloat); }

}  // namespace

TEST_CASE("a measured phase sets the budget, records its peak and restores the limit",
          "[memory][unit]") {
  MemoryMeter& meter = MemoryMeter::cpu();
  const int64_t base = meter.current();
  PhasePeaks peaks;
  REQUIRE_FALSE(meter.limit().has_value());
  {
    const MeasuredPhase phase(meter, peaks, "train", base + 4 * kMiB);
    REQUIRE(meter.limit().has_value());
    CHECK(*meter.limit() == base + 4 * kMiB);
    touch(kMiB);
    CHECK(phase.peak() == base + kMiB);
    // The budget is enforced inside the phase.
    CHECK_THROWS_AS(touch(8 * kMiB), c10::OutOfMemoryError);
  }
  CHECK_FALSE(meter.limit().has_value());
  REQUIRE(peaks.phases().count("train") == 1);
  CHECK(peaks.phases().at("train") == base + kMiB);
  CHECK(peaks.max() == base + kMiB);
  CHECK(peaks.limits().at("train") == base + 4 * kMiB);
}

TEST_CASE("a phase measured again keeps the larger peak, in either order", "[memory][unit]") {
  MemoryMeter& meter = MemoryMeter::cpu();
  const int64_t base = meter.current();
  PhasePeaks peaks;
  for (const int64_t bytes : {kMiB, 3 * kMiB, 2 * kMiB}) {
    const MeasuredPhase phase(meter, peaks, "validate", std::nullopt);
    touch(bytes);
  }
  CHECK(peaks.phases().at("validate") == base + 3 * kMiB);
  {
    const MeasuredPhase phase(meter, peaks, "test", std::nullopt);
    touch(kMiB);
  }
  CHECK(peaks.phases().at("test") == base + kMiB);
  CHECK(peaks.max() == base + 3 * kMiB);
}

TEST_CASE("a phase left by an exception still records its peak and restores the limit",
          "[memory][unit]") {
  MemoryMeter& meter = MemoryMeter::cpu();
  const int64_t base = meter.current();
  PhasePeaks peaks;
  {
    const MeasuredPhase outer(meter, peaks, "outer", base + 64 * kMiB);
    try {
      const MeasuredPhase inner(meter, peaks, "checkpoint", base + 8 * kMiB);
      at::Tensor held = torch::empty({kMiB / 2}, torch::kFloat);  // 2 MiB
      throw std::runtime_error("disk full");
    } catch (const std::runtime_error&) {
    }
    CHECK(MeasuredPhase::innermost() == &outer);
    REQUIRE(meter.limit().has_value());
    CHECK(*meter.limit() == base + 64 * kMiB);  // the outer phase's limit, not the inner one's
  }
  CHECK(MeasuredPhase::innermost() == nullptr);
  CHECK_FALSE(meter.limit().has_value());
  CHECK(peaks.phases().at("checkpoint") == base + 2 * kMiB);
  CHECK(peaks.phases().at("outer") == base + 2 * kMiB);  // the inner peak is the outer's too
}

TEST_CASE("a reset of the meter's peak inside a phase does not lose the phase's peak",
          "[memory][unit]") {
  MemoryMeter& meter = MemoryMeter::cpu();
  const int64_t base = meter.current();
  PhasePeaks peaks;
  {
    const MeasuredPhase outer(meter, peaks, "batch_trials", std::nullopt);
    touch(3 * kMiB);
    meter.reset_peak();  // as a batch trial or a profiled step does
    touch(kMiB);
    CHECK(outer.peak() == base + 3 * kMiB);
    {
      const MeasuredPhase inner(meter, peaks, "nested", std::nullopt);  // resets the peak too
      touch(kMiB / 2);
      CHECK(inner.peak() == base + kMiB / 2);
    }
    CHECK(outer.peak() == base + 3 * kMiB);
  }
  CHECK(peaks.phases().at("batch_trials") == base + 3 * kMiB);
  CHECK(peaks.phases().at("nested") == base + kMiB / 2);
}

TEST_CASE("an unbudgeted probe is named, lifts the limit and is no phase's peak",
          "[memory][unit]") {
  MemoryMeter& meter = MemoryMeter::cpu();
  const int64_t base = meter.current();
  PhasePeaks peaks;
  {
    const MeasuredPhase profile(meter, peaks, "profile", base + 2 * kMiB);
    touch(kMiB);
    {
      const UnbudgetedProbe probe(meter, "unit0_batch128");
      CHECK_FALSE(meter.limit().has_value());
      touch(8 * kMiB);  // past the budget: only a probe may
      CHECK(probe.peak() == base + 8 * kMiB);
    }
    REQUIRE(meter.limit().has_value());
    CHECK(*meter.limit() == base + 2 * kMiB);
    CHECK(profile.peak() == base + kMiB);
    // run_or_probe: what fits runs under the budget, what does not runs as a probe.
    int runs = 0;
    neuroflux::run_or_probe(meter, "fits", [&] {
      ++runs;
      touch(kMiB);
    });
    CHECK(runs == 1);
    neuroflux::run_or_probe(meter, "refused", [&] {
      ++runs;
      touch(4 * kMiB);
    });
    CHECK(runs == 3);
    CHECK(profile.peak() == base + kMiB);
  }
  CHECK(peaks.phases().at("profile") == base + kMiB);
  CHECK(peaks.phases().count("unit0_batch128") == 0);
  CHECK(peaks.probes().at("unit0_batch128") == base + 8 * kMiB);
  CHECK(peaks.probes().at("refused") == base + 4 * kMiB);
  CHECK(peaks.probes().count("fits") == 0);
  CHECK(peaks.max() == base + kMiB);
}
