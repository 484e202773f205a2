#include <catch2/catch.hpp>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "cache/cache_test_util.h"
#include "neuroflux/cache/activation_cache.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/memory/memory_meter.h"

using neuroflux::ActivationCache;
using neuroflux::CacheOptions;
using neuroflux::MemoryMeter;
using neuroflux::cache_test::data_error_message;
using neuroflux::cache_test::TempDir;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kHeaderBytes = 4096;

CacheOptions host_options(at::ScalarType dtype) {
  CacheOptions options;
  options.where = "host";
  options.dtype = dtype;
  return options;
}

CacheOptions disk_options(const std::string& path, at::ScalarType dtype) {
  CacheOptions options;
  options.where = "disk";
  options.dtype = dtype;
  options.path = path;
  return options;
}

std::vector<int64_t> sample_shape_of(const at::Tensor& data) {
  return std::vector<int64_t>(data.sizes().begin() + 1, data.sizes().end());
}

/// Writes `data` into a new cache in uneven batches (the last one partial) and finishes it.
std::shared_ptr<ActivationCache> fill(const CacheOptions& options, const at::Tensor& data,
                                      uint64_t key) {
  auto cache = ActivationCache::create(options, sample_shape_of(data), data.size(0), key);
  for (int64_t start = 0; start < data.size(0); start += 7) {
    cache->write(start, data.narrow(0, start, std::min<int64_t>(7, data.size(0) - start)));
  }
  cache->finish();
  return cache;
}

/// What a cache of `dtype` should give back for `data`: rounded to the storage dtype.
at::Tensor stored(const at::Tensor& data, at::ScalarType dtype) {
  return data.to(dtype).to(torch::kFloat);
}

void flip_byte(const std::string& path, int64_t offset) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  REQUIRE(file);
  file.seekg(offset);
  char c = 0;
  file.get(c);
  file.seekp(offset);
  file.put(static_cast<char>(c ^ 0x5A));
}

void check_reads(const ActivationCache& cache, const at::Tensor& expected) {
  const at::Tensor all = cache.slice(0, cache.count());
  CHECK(all.scalar_type() == torch::kFloat);
  CHECK(all.sizes() == expected.sizes());
  CHECK(torch::equal(all, expected));
  CHECK(torch::equal(cache.slice(5, 10), expected.narrow(0, 5, 10)));
  CHECK(cache.slice(3, 0).size(0) == 0);
  const at::Tensor index = torch::tensor({17, 0, 3, 3, 29}, torch::kLong);
  const at::Tensor gathered = cache.gather(index);
  CHECK(gathered.scalar_type() == torch::kFloat);
  CHECK(torch::equal(gathered, expected.index_select(0, index)));
  CHECK(cache.gather(torch::empty({0}, torch::kLong)).sizes() ==
        at::IntArrayRef({0, 3, 4, 5}));
}

}  // namespace

TEST_CASE("a host cache gives back what was written", "[cache][unit]") {
  torch::manual_seed(3);
  const at::Tensor data = torch::randn({30, 3, 4, 5});
  const at::ScalarType dtype = GENERATE(torch::kFloat, torch::kHalf);
  CAPTURE(dtype);
  auto cache = fill(host_options(dtype), data, 1);
  CHECK(cache->where() == "host");
  CHECK(cache->dtype() == dtype);
  CHECK(cache->count() == 30);
  CHECK(cache->sample_shape() == std::vector<int64_t>{3, 4, 5});
  CHECK(cache->bytes() == 30 * 60 * static_cast<int64_t>(at::elementSize(dtype)));
  check_reads(*cache, stored(data, dtype));
  if (dtype == torch::kFloat) {
    CHECK(torch::equal(cache->slice(0, 30), data));  // float32 is exact
  } else {
    // float16 keeps 11 significant bits: relative error at most 2^-11.
    CHECK(torch::allclose(cache->slice(0, 30), data, /*rtol=*/1e-3, /*atol=*/1e-6));
  }
}

TEST_CASE("write takes any floating dtype and a batch that requires grad", "[cache][unit]") {
  const at::Tensor data = torch::randn({10, 2}, torch::kDouble).requires_grad_();
  auto cache = fill(host_options(torch::kFloat), data, 1);
  CHECK(torch::equal(cache->slice(0, 10), data.detach().to(torch::kFloat)));
  CHECK_FALSE(cache->slice(0, 10).requires_grad());
}

TEST_CASE("a disk cache round-trips through its file and open()", "[cache][unit]") {
  TempDir dir;
  torch::manual_seed(4);
  const at::Tensor data = torch::randn({30, 3, 4, 5});
  const at::ScalarType dtype = GENERATE(torch::kFloat, torch::kHalf);
  CAPTURE(dtype);
  const std::string path = dir.file("sub/block0.cache");  // parent directory created
  auto cache = fill(disk_options(path, dtype), data, 0xABCDEF0123456789ULL);
  CHECK(cache->where() == "disk");
  check_reads(*cache, stored(data, dtype));

  REQUIRE(fs::exists(path));
  CHECK(static_cast<int64_t>(fs::file_size(path)) == kHeaderBytes + cache->bytes());
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.file("sub"))) {
    CHECK(e.path().filename() == "block0.cache");  // no temporary left behind
    ++files;
  }
  CHECK(files == 1);

  auto reopened = ActivationCache::open(path, {3, 4, 5}, 30, 0xABCDEF0123456789ULL);
  CHECK(reopened->where() == "disk");
  CHECK(reopened->dtype() == dtype);
  CHECK(reopened->bytes() == cache->bytes());
  CHECK(torch::equal(reopened->slice(0, 30), cache->slice(0, 30)));
  check_reads(*reopened, stored(data, dtype));
  // Reads are copies, never views of the mapping: they outlive the cache.
  at::Tensor kept = reopened->slice(0, 30);
  reopened.reset();
  CHECK(torch::equal(kept, cache->slice(0, 30)));
}

TEST_CASE("writes and reads are checked", "[cache][unit]") {
  auto cache = ActivationCache::create(host_options(torch::kHalf), {2, 3}, 10, 1);
  CHECK_THROWS_WITH(cache->write(0, torch::zeros({4, 3, 2})), Contains("does not hold samples"));
  CHECK_THROWS_WITH(cache->write(0, torch::zeros({4, 2})), Contains("does not hold samples"));
  CHECK_THROWS_WITH(cache->write(8, torch::zeros({4, 2, 3})), Contains("outside"));
  CHECK_THROWS_WITH(cache->write(-1, torch::zeros({1, 2, 3})), Contains("outside"));
  CHECK_THROWS_WITH(cache->write(0, torch::zeros({1, 2, 3}, torch::kLong)),
                    Contains("floating point"));
  CHECK_THROWS_WITH(cache->gather(torch::tensor({0}, torch::kLong)), Contains("before finish"));
  CHECK_THROWS_WITH(cache->slice(0, 1), Contains("before finish"));
  cache->write(0, torch::zeros({6, 2, 3}));
  CHECK_THROWS_WITH(cache->finish(), Contains("sample 6 of 10 was never written"));
  cache->write(6, torch::ones({4, 2, 3}));
  cache->finish();
  CHECK_THROWS_WITH(cache->write(0, torch::zeros({1, 2, 3})), Contains("writes are refused"));
  CHECK_THROWS_WITH(cache->finish(), Contains("already finished"));
  CHECK_THROWS_WITH(cache->gather(torch::tensor({10}, torch::kLong)), Contains("index 10"));
  CHECK_THROWS_WITH(cache->gather(torch::tensor({-1}, torch::kLong)), Contains("index -1"));
  CHECK_THROWS_WITH(cache->gather(torch::tensor({1}, torch::kInt)), Contains("int64"));
  CHECK_THROWS_WITH(cache->slice(8, 3), Contains("outside"));
  CHECK(cache->slice(9, 1).sum().item<float>() == 6.0f);

  CHECK_THROWS_WITH(ActivationCache::create(host_options(torch::kDouble), {2}, 1, 1),
                    Contains("float32 or float16"));
  CacheOptions nowhere;
  nowhere.where = "gpu";
  CHECK_THROWS_WITH(ActivationCache::create(nowhere, {2}, 1, 1), Contains("host"));
  CHECK_THROWS_WITH(ActivationCache::create(disk_options("", torch::kHalf), {2}, 1, 1),
                    Contains("path"));
  CHECK_THROWS_WITH(ActivationCache::create(host_options(torch::kHalf), {2, 0}, 1, 1),
                    Contains("positive"));
}

TEST_CASE("open() refuses a corrupt, stale, truncated or mismatched cache file",
          "[cache][unit]") {
  TempDir dir;
  const std::string path = dir.file("block1.cache");
  const at::Tensor data = torch::randn({20, 2, 3});
  fill(disk_options(path, torch::kFloat), data, 42);
  REQUIRE_NOTHROW(ActivationCache::open(path, {2, 3}, 20, 42));
  const auto size = static_cast<int64_t>(fs::file_size(path));

  SECTION("a flipped data byte") {
    flip_byte(path, kHeaderBytes + 37);
    const std::string message =
        data_error_message([&] { ActivationCache::open(path, {2, 3}, 20, 42); });
    CHECK_THAT(message, Contains(path) && Contains("corrupt: checksum mismatch"));
  }
  SECTION("a flipped header byte") {
    flip_byte(path, 40);  // inside the sample dims
    CHECK_THAT(data_error_message([&] { ActivationCache::open(path, {2, 3}, 20, 42); }),
               Contains("header checksum mismatch"));
  }
  SECTION("another producer key") {
    const std::string message =
        data_error_message([&] { ActivationCache::open(path, {2, 3}, 20, 43); });
    CHECK_THAT(message, Contains(path) && Contains("stale: produced by key 0x000000000000002a") &&
                            Contains("expected 0x000000000000002b"));
  }
  SECTION("a truncated file") {
    fs::resize_file(path, size - 10);
    CHECK_THAT(data_error_message([&] { ActivationCache::open(path, {2, 3}, 20, 42); }),
               Contains("truncated: expected " + std::to_string(size) + " bytes, file has " +
                        std::to_string(size - 10)));
  }
  SECTION("a file cut inside its header") {
    fs::resize_file(path, 100);
    CHECK_THAT(data_error_message([&] { ActivationCache::open(path, {2, 3}, 20, 42); }),
               Contains("truncated"));
  }
  SECTION("trailing bytes") {
    fs::resize_file(path, size + 4);
    CHECK_THAT(data_error_message([&] { ActivationCache::open(path, {2, 3}, 20, 42); }),
               Contains("corrupt"));
  }
  SECTION("another sample shape") {
    CHECK_THAT(data_error_message([&] { ActivationCache::open(path, {3, 2}, 20, 42); }),
               Contains("shape mismatch: file holds samples of shape [2, 3], expected [3, 2]"));
    CHECK_THAT(data_error_message([&] { ActivationCache::open(path, {6}, 20, 42); }),
               Contains("shape mismatch"));
  }
  SECTION("another sample count") {
    CHECK_THAT(data_error_message([&] { ActivationCache::open(path, {2, 3}, 21, 42); }),
               Contains("count mismatch: file holds 20 samples, expected 21"));
  }
  SECTION("a missing file") {
    const std::string missing = dir.file("missing.cache");
    CHECK_THAT(data_error_message([&] { ActivationCache::open(missing, {2, 3}, 20, 42); }),
               Contains(missing));
  }
  SECTION("a file that is not a cache") {
    { std::ofstream(path, std::ios::trunc) << std::string(5000, 'x'); }
    CHECK_THAT(data_error_message([&] { ActivationCache::open(path, {2, 3}, 20, 42); }),
               Contains("not a NeuroFlux activation cache"));
  }
}

TEST_CASE("an unfinished disk cache leaves nothing at its path", "[cache][unit]") {
  TempDir dir;
  const std::string path = dir.file("block2.cache");
  const std::string temp = path + ".tmp-" + std::to_string(::getpid());

  SECTION("killed before finish") {
    auto cache = ActivationCache::create(disk_options(path, torch::kHalf), {4}, 8, 7);
    cache->write(0, torch::ones({4, 4}));
    CHECK_FALSE(fs::exists(path));  // only the temporary exists while writing
    CHECK(fs::exists(temp));
    cache.reset();
    CHECK(dir.entries().empty());
  }
  SECTION("an earlier finished file survives an unfinished rewrite") {
    const at::Tensor data = torch::randn({8, 4});
    fill(disk_options(path, torch::kFloat), data, 7);
    auto rewrite = ActivationCache::create(disk_options(path, torch::kFloat), {4}, 8, 8);
    rewrite->write(0, torch::zeros({8, 4}));
    rewrite.reset();
    CHECK(dir.entries() == std::vector<std::string>{"block2.cache"});
    CHECK(torch::equal(ActivationCache::open(path, {4}, 8, 7)->slice(0, 8), data));
  }
  SECTION("a finished rewrite replaces the file") {
    fill(disk_options(path, torch::kFloat), torch::zeros({8, 4}), 7);
    const at::Tensor data = torch::randn({8, 4});
    fill(disk_options(path, torch::kFloat), data, 8);
    CHECK(dir.entries() == std::vector<std::string>{"block2.cache"});
    CHECK_THAT(data_error_message([&] { ActivationCache::open(path, {4}, 8, 7); }),
               Contains("stale"));
    CHECK(torch::equal(ActivationCache::open(path, {4}, 8, 8)->slice(0, 8), data));
  }
}

TEST_CASE("cache storage is outside the memory budget, batches read from it are inside",
          "[cache][unit]") {
  TempDir dir;
  MemoryMeter& meter = MemoryMeter::cpu();
  const std::vector<int64_t> shape{64, 32, 32};  // 256 KiB per float32 sample
  constexpr int64_t kCount = 64;                 // 16 MiB in all
  constexpr int64_t kSampleBytes = 64 * 32 * 32 * 4;
  const at::Tensor batch = torch::ones({8, 64, 32, 32});  // 2 MiB, allocated before the limit
  const std::string where = GENERATE(std::string("host"), std::string("disk"));
  CAPTURE(where);
  CacheOptions options = where == "host" ? host_options(torch::kFloat)
                                         : disk_options(dir.file("big.cache"), torch::kFloat);

  const int64_t base = meter.current();
  std::shared_ptr<ActivationCache> cache;
  {
    // A budget far below the cache's 16 MiB: creating and filling it must not be refused.
    neuroflux::MemoryLimitGuard limit(meter, base + (1 << 20));
    cache = ActivationCache::create(options, shape, kCount, 5);
    for (int64_t i = 0; i < kCount; i += 8) cache->write(i, batch);
    cache->finish();
    CHECK(meter.peak() - base < (1 << 20));
  }
  CHECK(cache->bytes() == kCount * kSampleBytes);
  CHECK(meter.current() - base < (1 << 20));

  const at::Tensor read = cache->gather(torch::arange(16, torch::kLong));
  CHECK(meter.current() - base >= 16 * kSampleBytes);
  CHECK(read.sum().item<double>() == 16.0 * 64 * 32 * 32);
}
