// The on-disk form of an ActivationCache: a fixed 4096-byte header, then the samples as one
// C-contiguous array [count, sample_shape...] in the storage dtype. The header size keeps the data
// page-aligned, so the file maps straight into a tensor (at::from_blob) with no copy.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace neuroflux::detail {

constexpr size_t kCacheHeaderBytes = 4096;
constexpr uint32_t kCacheFormatVersion = 1;
constexpr uint32_t kCacheMaxDims = 16;
constexpr char kCacheMagic[8] = {'N', 'F', 'C', 'A', 'C', 'H', 'E', '1'};

/// The header at offset 0 (the rest of the 4096 bytes is zero). Fields are in host byte order,
/// little-endian on every target we build for; every field is naturally aligned, so the struct
/// has no padding and its bytes are exactly what is hashed and written.
struct CacheFileHeader {
  char magic[8];                  ///< "NFCACHE1"
  uint32_t version;               ///< kCacheFormatVersion
  uint32_t dtype;                 ///< 1 = float32, 2 = float16
  uint32_t ndim;                  ///< per-sample dims, <= kCacheMaxDims
  uint32_t data_crc;              ///< zlib crc32 of the data bytes
  int64_t dims[kCacheMaxDims];    ///< per-sample shape; unused entries 0
  int64_t count;                  ///< samples
  uint64_t key;                   ///< producer (config + weights) key
  uint64_t data_bytes;            ///< count * prod(dims) * element size
  uint32_t header_crc;            ///< crc32 of every byte before this field
  uint32_t reserved;              ///< 0
};
static_assert(sizeof(CacheFileHeader) == 184, "CacheFileHeader must have no padding");
static_assert(sizeof(CacheFileHeader) <= kCacheHeaderBytes, "header must fit its page");

/// zlib crc32 of `bytes` bytes, fed in chunks (zlib takes a 32-bit length). `crc`: the crc32 of
/// the bytes before these, to checksum a stream piece by piece (0 for the first piece).
uint32_t crc32_of(const void* data, uint64_t bytes, uint32_t crc = 0);

CacheFileHeader make_cache_header(at::ScalarType dtype, const std::vector<int64_t>& sample_shape,
                                  int64_t count, uint64_t key, uint64_t data_bytes,
                                  uint32_t data_crc);

/// Checks a header read from `path` (a file of `file_bytes`) against what the reader expects and
/// returns the stored dtype; a DataError naming the file and the first problem otherwise.
at::ScalarType validate_cache_header(const std::string& path, const CacheFileHeader& header,
                                     uint64_t file_bytes, const std::vector<int64_t>& sample_shape,
                                     int64_t count, uint64_t key);

/// A MAP_SHARED mapping of a whole file, unmapped when the last owner (the cache, or a tensor
/// made by tensor()) lets go.
class FileMapping : public std::enable_shared_from_this<FileMapping> {
 public:
  /// Maps `bytes` bytes of the open file `fd` (named `path` in errors); read-only unless
  /// `writable`. The descriptor may be closed afterwards.
  static std::shared_ptr<FileMapping> map(const std::string& path, int fd, size_t bytes,
                                          bool writable);
  ~FileMapping();
  FileMapping(const FileMapping&) = delete;
  FileMapping& operator=(const FileMapping&) = delete;

  char* base() const { return base_; }
  size_t bytes() const { return bytes_; }
  /// A tensor over the mapped bytes from `offset`; it keeps the mapping alive. No copy, and no
  /// allocation the MemoryMeter sees.
  at::Tensor tensor(size_t offset, at::IntArrayRef sizes, at::ScalarType dtype);
  /// Flushes dirty pages to the file (msync MS_SYNC); a DataError naming the file on failure.
  void sync() const;
  /// Drops write access once the file is finished (mprotect PROT_READ).
  void make_read_only();
  /// madvise hint; failures are ignored (it is only a hint).
  void advise(int advice) const;

 private:
  FileMapping(std::string path, char* base, size_t bytes)
      : path_(std::move(path)), base_(base), bytes_(bytes) {}
  std::string path_;
  char* base_;
  size_t bytes_;
};

/// Creates (or truncates) `path`, sizes it to header + `data_bytes` with its space reserved, and
/// maps it read/write. On failure nothing is left at `path`.
std::shared_ptr<FileMapping> create_mapped_file(const std::string& path, uint64_t data_bytes);

}  // namespace neuroflux::detail
