#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/util/errors.h"

using neuroflux::MemoryMeter;

TEST_CASE("allocating a tensor moves current and peak by its bytes", "[memory][unit]") {
  MemoryMeter& meter = MemoryMeter::cpu();
  const int64_t before = meter.current();
  meter.reset_peak();
  {
    at::Tensor t = torch::empty({1000, 250}, torch::kFloat);  // 1,000,000 bytes
    CHECK(meter.current() - before == 1000000);
    at::Tensor u = torch::empty({500}, torch::kDouble);         // 4,000 bytes
    CHECK(meter.current() - before == 1004000);
    CHECK(meter.peak() - before == 1004000);
  }
  CHECK(meter.current() == before);       // freeing returns the count
  CHECK(meter.peak() - before == 1004000);  // the peak remembers
  meter.reset_peak();
  CHECK(meter.peak() == meter.current());
}

namespace {

// Whether allocating `floats` float32 elements is refused with the meter's out-of-memory error.
bool refused(int64_t floats) {
  try {
    at::Tensor t = torch::empty({floats}, torch::kFloat);
  } catch (const std::exception& e) {
    CHECK(std::string(e.what()).find("memory.budget") != std::string::npos);
    return neuroflux::is_out_of_memory(e);
  }
  return false;
}

}  // namespace

TEST_CASE("the limit refuses an allocation past it with an out-of-memory error",
          "[memory][unit]") {
  MemoryMeter& meter = MemoryMeter::cpu();
  const int64_t base = meter.current();
  // Parenthesised: base + 1 << 20 would be (base + 1) << 20, a limit nothing ever reaches.
  const int64_t limit_bytes = int64_t{1} << 20;
  {
    neuroflux::MemoryLimitGuard limit(meter, base + limit_bytes);
    at::Tensor small = torch::empty({1024}, torch::kFloat);  // 4 KiB
    // Up to the limit exactly is allowed; one float more is not, and is not counted.
    at::Tensor rest = torch::empty({(limit_bytes - 4096) / 4}, torch::kFloat);
    CHECK(meter.current() == base + limit_bytes);
    CHECK(refused(1));
    CHECK(meter.current() == base + limit_bytes);
    rest = at::Tensor();
    CHECK(refused(4 << 20));                // 16 MiB
    CHECK(meter.current() == base + 4096);  // the refused bytes were not counted
    CHECK_FALSE(refused(1024));             // what fits still fits
  }
  CHECK_FALSE(meter.limit().has_value());   // the guard restored "no limit"
  at::Tensor big = torch::empty({4 << 20}, torch::kFloat);
  CHECK(meter.current() >= base + (16 << 20));
}

TEST_CASE("untracked allocations are neither counted nor limited", "[memory][unit]") {
  MemoryMeter& meter = MemoryMeter::cpu();
  const int64_t base = meter.current();
  at::Tensor host;
  {
    neuroflux::MemoryLimitGuard limit(meter, base + 1024);
    neuroflux::UntrackedScope untracked;
    host = torch::ones({1 << 20}, torch::kFloat);
  }
  CHECK(meter.current() == base);
  host = at::Tensor();  // releasing it must not drive the count below the base
  CHECK(meter.current() == base);
}

TEST_CASE("autograd's saved activations are counted", "[memory][unit]") {
  MemoryMeter& meter = MemoryMeter::cpu();
  const int64_t base = meter.current();
  at::Tensor w = torch::randn({64, 64}, torch::requires_grad());
  at::Tensor x = torch::randn({256, 64});
  const int64_t with_inputs = meter.current();
  at::Tensor y = torch::relu(torch::mm(x, w));  // relu saves its output, mm saves x and w
  CHECK(meter.current() - with_inputs >= 256 * 64 * 4);
  y.sum().backward();
  CHECK(w.grad().defined());
  (void)base;
}
