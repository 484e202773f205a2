#include <catch2/catch.hpp>

#include <sys/mman.h>

#include <chrono>

#include "neuroflux/util/cpu_usage.h"

TEST_CASE("CpuUsage sees user time and the page faults of first touches", "[memory][unit]") {
  const neuroflux::CpuUsage before = neuroflux::CpuUsage::of_process();
  // 64 fresh pages from the kernel, each faulted in by its first write.
  constexpr size_t kPages = 64, kPage = 4096;
  void* memory = mmap(nullptr, kPages * kPage, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(memory != MAP_FAILED);
  for (size_t p = 0; p < kPages; ++p) static_cast<volatile char*>(memory)[p * kPage] = 1;
  munmap(memory, kPages * kPage);
  // Busy until the process has used 30 ms of CPU; a clock that does not move times out instead.
  volatile double sink = 0;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  neuroflux::CpuUsage spent;
  do {
    for (int i = 0; i < 100000; ++i) sink = sink + 1.0;
    spent = neuroflux::CpuUsage::of_process() - before;
  } while (spent.user_seconds + spent.system_seconds < 0.03 &&
           std::chrono::steady_clock::now() < give_up);

  CHECK(spent.minor_faults >= static_cast<int64_t>(kPages));
  CHECK(spent.user_seconds + spent.system_seconds >= 0.03);
  CHECK(spent.system_seconds >= 0);
}
