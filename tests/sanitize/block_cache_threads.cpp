// Several threads allocate from and free into one BlockCache while another changes its limit and
// reads its counters; built with -fsanitize=thread (tests/CMakeLists.txt), so a data race fails
// the test with ThreadSanitizer's report. Each block is filled with its owner's id and checked
// before release: a block handed to two threads at once fails even without the sanitizer.
#include <atomic>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "neuroflux/src/memory/block_cache.h"

using neuroflux::detail::BlockCache;

int main() {
  BlockCache cache(1 << 20);  // small, so evictions happen all the time
  std::atomic<int> corrupted{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> workers;
  for (int id = 1; id <= 4; ++id) {
    workers.emplace_back([id, &cache, &corrupted] {
      std::vector<std::pair<unsigned char*, size_t>> held;
      for (int i = 0; i < 20000; ++i) {
        const size_t cls = BlockCache::size_class(64 + static_cast<size_t>(i * 7919 + id) % 70000);
        auto* block = static_cast<unsigned char*>(cache.allocate(cls));
        std::memset(block, id, cls);
        held.emplace_back(block, cls);
        if (held.size() > 6) {
          auto [old, old_cls] = held[static_cast<size_t>(i) % held.size()];
          for (size_t k = 0; k < old_cls; k += 61)
            if (old[k] != id) ++corrupted;
          cache.deallocate(old, old_cls);
          held.erase(held.begin() + static_cast<long>(static_cast<size_t>(i) % held.size()));
        }
      }
      for (auto [block, cls] : held) cache.deallocate(block, cls);
    });
  }
  std::thread tuner([&] {
    for (int64_t round = 0; !done.load(); ++round) {
      cache.set_limit((round % 2 == 0 ? 1 : 4) << 20);
      if (cache.stats().cached_bytes > cache.limit()) ++corrupted;  // the tuner alone sets it
    }
  });
  for (auto& w : workers) w.join();
  done = true;
  tuner.join();
  cache.release_all();
  const auto stats = cache.stats();
  std::printf("hits %lld, misses %lld, evictions %lld, corrupted %d\n",
              static_cast<long long>(stats.hits), static_cast<long long>(stats.misses),
              static_cast<long long>(stats.evictions), corrupted.load());
  return corrupted.load() == 0 && stats.cached_bytes == 0 && stats.hits > 0 ? 0 : 1;
}
