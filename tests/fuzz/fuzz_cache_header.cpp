// ActivationCache::open on a disk cache file: its 4096-byte header (magic, version, dtype, shape,
// count, producer key, sizes, two checksums) and the data behind it. Input: a flags byte, a layout
// byte, then the file. The layout byte picks what the caller expects (sample shape, count, key)
// from kLayouts. Flags bit 0 recomputes the header checksum and bit 1 the data checksum before the
// file is written, so mutations also reach the checks behind them (a fuzzer does not forge a
// crc32). Promise: a DataError, or a cache of the expected layout whose every sample reads back
// as float32.
#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cache/cache_file.h"
#include "fuzz_support.h"
#include "neuroflux/cache/activation_cache.h"

namespace {

struct Layout {
  std::vector<int64_t> sample_shape;
  int64_t count;
  uint64_t key;
};

// What callers ask for: small layouts a fuzzed file can fill, a scalar-sample one, an empty one,
// and a real cache's (50000 samples of 512 x 4 x 4) that no small file can hold.
const Layout kLayouts[] = {{{2, 3}, 4, 0x0123456789abcdefull},
                           {{5}, 3, 7},
                           {{1, 1, 1}, 1, 0},
                           {{}, 6, 42},
                           {{3}, 0, 1},
                           {{512, 4, 4}, 50000, 0xfeedull}};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using neuroflux::detail::CacheFileHeader;
  if (size < 2) return 0;
  const uint8_t flags = data[0];
  const Layout& layout = kLayouts[data[1] % (sizeof kLayouts / sizeof kLayouts[0])];
  std::vector<uint8_t> file(data + 2, data + size);
  if (file.size() >= sizeof(CacheFileHeader)) {
    CacheFileHeader header;
    std::memcpy(&header, file.data(), sizeof header);
    if ((flags & 2) != 0) {
      const uint64_t data_bytes = file.size() > neuroflux::detail::kCacheHeaderBytes
                                      ? file.size() - neuroflux::detail::kCacheHeaderBytes
                                      : 0;
      header.data_crc = neuroflux::detail::crc32_of(
          file.data() + neuroflux::detail::kCacheHeaderBytes * (data_bytes > 0), data_bytes);
    }
    if ((flags & 1) != 0) {
      header.header_crc =
          neuroflux::detail::crc32_of(&header, offsetof(CacheFileHeader, header_crc));
    }
    std::memcpy(file.data(), &header, sizeof header);
  }
  const std::string path = neuroflux::fuzz::write_bytes(neuroflux::fuzz::scratch_dir() / "cache",
                                                        file.data(), file.size());
  neuroflux::fuzz::expect_clear_errors([&] {
    const auto cache =
        neuroflux::ActivationCache::open(path, layout.sample_shape, layout.count, layout.key);
    std::vector<int64_t> sizes{layout.count};
    sizes.insert(sizes.end(), layout.sample_shape.begin(), layout.sample_shape.end());
    const at::Tensor all = cache->slice(0, layout.count);
    NF_FUZZ_REQUIRE(all.sizes() == at::IntArrayRef(sizes) && all.scalar_type() == at::kFloat,
                    "the expected layout, as float32");
    NF_FUZZ_REQUIRE(cache->count() == layout.count && cache->sample_shape() == layout.sample_shape,
                    "count and shape");
  });
  return 0;
}
