#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <atomic>
#include <thread>
#include <vector>

#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/src/memory/block_cache.h"

using neuroflux::MemoryMeter;
using neuroflux::detail::BlockCache;

TEST_CASE("size classes: four per power of two, never smaller than the request", "[memory][unit]") {
  CHECK(BlockCache::size_class(1) == 64);
  CHECK(BlockCache::size_class(64) == 64);
  CHECK(BlockCache::size_class(65) == 80);
  CHECK(BlockCache::size_class(1024) == 1024);
  CHECK(BlockCache::size_class(1025) == 1280);
  CHECK(BlockCache::size_class(1536) == 1536);
  CHECK(BlockCache::size_class(1537) == 1792);
  CHECK(BlockCache::size_class(6422592) == 7340032);  // vgg11's first map at batch 128, + header
  for (size_t n = 1; n < (size_t{1} << 22); n = n * 3 / 2 + 1) {
    const size_t c = BlockCache::size_class(n);
    CHECK(c >= n);
    CHECK(c <= n + n / 4 + 64);  // at most a quarter wasted above the smallest class
    CHECK(BlockCache::size_class(c) == c);
  }
}

TEST_CASE("a freed block is handed out again for a request of its size class", "[memory][unit]") {
  BlockCache cache(1 << 20);
  const size_t cls = BlockCache::size_class(5000);
  void* a = cache.allocate(cls);
  cache.deallocate(a, cls);
  CHECK(cache.stats().cached_bytes == static_cast<int64_t>(cls));
  void* other = cache.allocate(BlockCache::size_class(50000));  // another class: not a
  CHECK(other != a);
  void* again = cache.allocate(cls);
  CHECK(again == a);
  CHECK(cache.stats().hits == 1);
  CHECK(cache.stats().misses == 2);
  CHECK(cache.stats().cached_bytes == 0);
  cache.deallocate(again, cls);
  cache.deallocate(other, BlockCache::size_class(50000));
  cache.release_all();
  CHECK(cache.stats().cached_bytes == 0);
}

TEST_CASE("the cache evicts the least recently freed blocks to stay under its limit",
          "[memory][unit]") {
  const size_t cls = 4096;
  BlockCache cache(3 * cls);
  std::vector<void*> blocks;
  for (int i = 0; i < 4; ++i) blocks.push_back(cache.allocate(cls));
  for (void* b : blocks) cache.deallocate(b, cls);  // the fourth pushes out the first
  CHECK(cache.stats().cached_bytes == 3 * static_cast<int64_t>(cls));
  CHECK(cache.stats().evictions == 1);
  // Newest first: the three survivors come back in reverse order of freeing.
  CHECK(cache.allocate(cls) == blocks[3]);
  CHECK(cache.allocate(cls) == blocks[2]);
  CHECK(cache.allocate(cls) == blocks[1]);
  CHECK(cache.stats().hits == 3);
  for (int i = 1; i < 4; ++i) cache.deallocate(blocks[i], cls);

  // A block larger than the whole limit is never cached.
  void* big = cache.allocate(4 * cls);
  cache.deallocate(big, 4 * cls);
  CHECK(cache.stats().cached_bytes == 3 * static_cast<int64_t>(cls));

  cache.set_limit(cls);
  CHECK(cache.stats().cached_bytes == static_cast<int64_t>(cls));
  cache.set_limit(0);  // caching off
  CHECK(cache.stats().cached_bytes == 0);
  void* b = cache.allocate(cls);
  cache.deallocate(b, cls);
  CHECK(cache.stats().cached_bytes == 0);
}

TEST_CASE("ATen reuses a freed tensor's memory; live and peak count only handed-out bytes",
          "[memory][unit]") {
  MemoryMeter& meter = MemoryMeter::cpu();
  const int64_t base = meter.current();
  meter.reset_peak();
  const void* first = nullptr;
  {
    at::Tensor t = torch::empty({1000, 250}, torch::kFloat);  // 1,000,000 bytes
    first = t.data_ptr();
  }
  CHECK(meter.current() == base);
  CHECK(meter.reserved() >= base + 1000000);  // kept for reuse, counted as reserved only
  at::Tensor again = torch::empty({1000, 250}, torch::kFloat);
  CHECK(again.data_ptr() == first);
  CHECK(meter.current() - base == 1000000);
  CHECK(meter.peak() - base == 1000000);
  again = at::Tensor();
  meter.release_cached();
  CHECK(meter.reserved() == meter.current());
}

TEST_CASE("an allocation past the limit is refused even when a cached block would hold it",
          "[memory][unit]") {
  MemoryMeter& meter = MemoryMeter::cpu();
  const int64_t base = meter.current();
  { at::Tensor big = torch::empty({1 << 20}, torch::kFloat); }  // 4 MiB, now cached
  CHECK(meter.reserved() - meter.current() >= (4 << 20));
  {
    neuroflux::MemoryLimitGuard limit(meter, base + (1 << 20));
    bool refused = false;
    try {
      at::Tensor big = torch::empty({1 << 20}, torch::kFloat);
    } catch (const std::exception& e) {
      refused = neuroflux::is_out_of_memory(e);
    }
    CHECK(refused);
    CHECK(meter.current() == base);
  }
  at::Tensor fits = torch::empty({1 << 20}, torch::kFloat);  // without the limit it is served
  CHECK(meter.current() - base == (4 << 20));
}

TEST_CASE("concurrent allocation and release from several threads keeps the count exact",
          "[memory][unit]") {
  MemoryMeter& meter = MemoryMeter::cpu();
  const int64_t base = meter.current();
  std::atomic<int64_t> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &failures] {
      std::vector<at::Tensor> held;
      for (int i = 0; i < 2000; ++i) {
        const int64_t n = 16 + (i * 7919 + t * 104729) % 40000;
        held.push_back(torch::empty({n}, torch::kFloat));
        if (held.back().numel() != n) ++failures;
        if (held.size() > 8) held.erase(held.begin() + (i % 8));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(failures.load() == 0);
  CHECK(meter.current() == base);
  CHECK(meter.reserved() >= meter.current());
}
