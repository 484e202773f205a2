#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <thread>

#include "cache/cache_test_util.h"
#include "neuroflux/cache/activation_cache.h"
#include "neuroflux/memory/memory_meter.h"

using neuroflux::ActivationCache;
using neuroflux::CacheBatchLoader;
using neuroflux::CacheOptions;
using neuroflux::MemoryMeter;
using Catch::Matchers::Contains;

namespace {

/// A finished cache whose sample i is filled with the value i (exact in float16 below 2048).
std::shared_ptr<ActivationCache> indexed_cache(int64_t count, const std::vector<int64_t>& shape,
                                               const CacheOptions& options) {
  auto cache = ActivationCache::create(options, shape, count, 11);
  std::vector<int64_t> sizes{count};
  sizes.insert(sizes.end(), shape.begin(), shape.end());
  std::vector<int64_t> view(sizes.size(), 1);
  view[0] = count;
  cache->write(0, torch::arange(count, torch::kFloat).view(view).expand(sizes));
  cache->finish();
  return cache;
}

CacheOptions host(at::ScalarType dtype = torch::kHalf) {
  CacheOptions options;
  options.dtype = dtype;
  return options;
}

at::Tensor labels_for(int64_t count) { return torch::arange(count, torch::kLong) * 7 % 10; }

/// Runs a whole epoch: checks every batch's samples against their labels, returns the order.
std::vector<int64_t> epoch_order(CacheBatchLoader& loader, int64_t batch_size,
                                 std::vector<int64_t>* batch_sizes = nullptr) {
  std::vector<int64_t> order;
  at::Tensor inputs, labels;
  int64_t batches = 0;
  while (loader.next(inputs, labels)) {
    ++batches;
    REQUIRE(inputs.scalar_type() == torch::kFloat);
    REQUIRE(inputs.size(0) == labels.size(0));
    REQUIRE(inputs.size(0) <= batch_size);
    if (batch_sizes != nullptr) batch_sizes->push_back(inputs.size(0));
    const at::Tensor flat = inputs.flatten(1);
    const at::Tensor ids = flat.select(1, 0).to(torch::kLong);
    CHECK(torch::equal(flat, ids.to(torch::kFloat).unsqueeze(1).expand_as(flat)));  // samples intact
    CHECK(torch::equal(labels, ids * 7 % 10));  // labels travel with their samples
    for (int64_t i = 0; i < ids.size(0); ++i) order.push_back(ids[i].item<int64_t>());
  }
  CHECK(batches == loader.num_batches());
  CHECK_FALSE(loader.next(inputs, labels));  // stays exhausted
  return order;
}

std::vector<int64_t> run_epoch(const std::shared_ptr<ActivationCache>& cache, int64_t batch_size,
                               bool shuffle, uint64_t seed, int64_t epoch) {
  CacheBatchLoader loader(cache, labels_for(cache->count()), batch_size, shuffle, seed, epoch);
  return epoch_order(loader, batch_size);
}

std::vector<int64_t> iota(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

}  // namespace

TEST_CASE("the loader visits every sample once per epoch, the last batch partial",
          "[cache][unit]") {
  auto cache = indexed_cache(103, {2, 3}, host());
  CacheBatchLoader loader(cache, labels_for(103), 10, /*shuffle=*/true, 5, 0);
  CHECK(loader.num_batches() == 11);
  std::vector<int64_t> sizes;
  std::vector<int64_t> order = epoch_order(loader, 10, &sizes);
  CHECK(sizes == std::vector<int64_t>{10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 3});
  CHECK(order != iota(103));  // shuffled
  std::sort(order.begin(), order.end());
  CHECK(order == iota(103));
}

TEST_CASE("the loader's order depends on (seed, epoch) only", "[cache][unit]") {
  auto cache = indexed_cache(200, {3}, host(torch::kFloat));
  const std::vector<int64_t> first = run_epoch(cache, 32, true, 9, 0);
  CHECK(run_epoch(cache, 32, true, 9, 0) == first);     // same (seed, epoch): same order
  CHECK(run_epoch(cache, 17, true, 9, 0) == first);     // whatever the batch size
  CHECK(run_epoch(cache, 32, true, 9, 1) != first);     // next epoch: another order
  CHECK(run_epoch(cache, 32, true, 10, 0) != first);    // another seed: another order
  CHECK(run_epoch(cache, 32, false, 9, 0) == iota(200));  // no shuffle: in order
  // The documented stream: randperm drawn from a CPU generator seeded seed * 1000003 + epoch + 29.
  auto generator = at::make_generator<at::CPUGeneratorImpl>(9ULL * 1000003ULL + 0 + 29);
  const at::Tensor expected = torch::randperm(200, generator, torch::kLong);
  CHECK(first == std::vector<int64_t>(expected.data_ptr<int64_t>(),
                                      expected.data_ptr<int64_t>() + 200));
}

TEST_CASE("the loader reads a disk cache", "[cache][unit]") {
  neuroflux::cache_test::TempDir dir;
  CacheOptions options;
  options.where = "disk";
  options.path = dir.file("loader.cache");
  indexed_cache(50, {4}, options);
  auto reopened = ActivationCache::open(options.path, {4}, 50, 11);
  std::vector<int64_t> order = run_epoch(reopened, 8, true, 1, 3);
  std::sort(order.begin(), order.end());
  CHECK(order == iota(50));
}

TEST_CASE("a loader destroyed mid-epoch stops its thread", "[cache][unit]") {
  auto cache = indexed_cache(64, {16, 16, 16}, host());
  at::Tensor inputs, labels;
  SECTION("right after construction") {
    CacheBatchLoader loader(cache, labels_for(64), 4, true, 1, 0);
  }
  SECTION("with a prefetched batch waiting in the slot") {
    CacheBatchLoader loader(cache, labels_for(64), 4, true, 1, 0);
    REQUIRE(loader.next(inputs, labels));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let it fill the slot
  }
  SECTION("after most of the epoch") {
    CacheBatchLoader loader(cache, labels_for(64), 4, true, 1, 0);
    for (int i = 0; i < 14; ++i) REQUIRE(loader.next(inputs, labels));
  }
  SECTION("after the whole epoch") {
    CacheBatchLoader loader(cache, labels_for(64), 4, true, 1, 0);
    while (loader.next(inputs, labels)) {
    }
  }
  SUCCEED("the destructor returned");
}

TEST_CASE("an error in the prefetch thread comes out of next()", "[cache][unit]") {
  // Prefetched batches are tracked by the meter: a budget smaller than one batch refuses it on
  // the loader's thread, and next() rethrows that refusal.
  auto cache = indexed_cache(32, {64, 32}, host(torch::kFloat));  // 8 KiB per sample
  const at::Tensor labels = labels_for(32);
  MemoryMeter& meter = MemoryMeter::cpu();
  neuroflux::MemoryLimitGuard limit(meter, meter.current() + (16 << 10));
  CacheBatchLoader loader(cache, labels, 8, true, 1, 0);  // 64 KiB batches
  at::Tensor inputs, batch_labels;
  bool refused = false;
  try {
    loader.next(inputs, batch_labels);
  } catch (const std::exception& e) {
    refused = neuroflux::is_out_of_memory(e);
  }
  CHECK(refused);
}

TEST_CASE("the loader checks its arguments", "[cache][unit]") {
  auto cache = indexed_cache(10, {2}, host());
  CHECK_THROWS_WITH(CacheBatchLoader(cache, labels_for(9), 4, true, 1, 0),
                    Contains("one entry per cached sample (10)"));
  CHECK_THROWS_WITH(CacheBatchLoader(cache, labels_for(10), 0, true, 1, 0),
                    Contains("batch_size must be positive"));
  CacheBatchLoader empty(indexed_cache(0, {2}, host()), labels_for(0), 4, true, 1, 0);
  at::Tensor inputs, labels;
  CHECK(empty.num_batches() == 0);
  CHECK_FALSE(empty.next(inputs, labels));
}
