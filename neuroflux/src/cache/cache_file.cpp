#include "cache/cache_file.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <iomanip>
#include <sstream>

#include "neuroflux/util/errors.h"

namespace neuroflux::detail {
namespace {

constexpr uint32_t kDtypeFloat32 = 1;
constexpr uint32_t kDtypeFloat16 = 2;

std::string hex(uint64_t value) {
  std::ostringstream out;
  out << "0x" << std::hex << std::setw(16) << std::setfill('0') << value;
  return out.str();
}

std::string shape_text(const int64_t* dims, size_t ndim) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < ndim; ++i) out << (i > 0 ? ", " : "") << dims[i];
  out << ']';
  return out.str();
}

uint32_t header_crc_of(const CacheFileHeader& header) {
  return crc32_of(&header, offsetof(CacheFileHeader, header_crc));
}

[[noreturn]] void refuse(const std::string& path, const std::string& problem) {
  throw DataError(path + ": " + problem + "; the activation cache is not used");
}

}  // namespace

uint32_t crc32_of(const void* data, uint64_t bytes, uint32_t previous) {
  uLong crc = previous;  // ::crc32(0L, Z_NULL, 0), zlib's initial value, is 0
  const auto* p = static_cast<const Bytef*>(data);
  constexpr uint64_t kChunk = uint64_t{1} << 30;
  while (bytes > 0) {
    const uint64_t n = std::min(bytes, kChunk);
    crc = ::crc32(crc, p, static_cast<uInt>(n));
    p += n;
    bytes -= n;
  }
  return static_cast<uint32_t>(crc);
}

CacheFileHeader make_cache_header(at::ScalarType dtype, const std::vector<int64_t>& sample_shape,
                                  int64_t count, uint64_t key, uint64_t data_bytes,
                                  uint32_t data_crc) {
  TORCH_INTERNAL_ASSERT(sample_shape.size() <= kCacheMaxDims);
  CacheFileHeader header;
  std::memset(&header, 0, sizeof header);
  std::memcpy(header.magic, kCacheMagic, sizeof header.magic);
  header.version = kCacheFormatVersion;
  header.dtype = dtype == at::kHalf ? kDtypeFloat16 : kDtypeFloat32;
  header.ndim = static_cast<uint32_t>(sample_shape.size());
  header.data_crc = data_crc;
  std::copy(sample_shape.begin(), sample_shape.end(), header.dims);
  header.count = count;
  header.key = key;
  header.data_bytes = data_bytes;
  header.header_crc = header_crc_of(header);
  return header;
}

at::ScalarType validate_cache_header(const std::string& path, const CacheFileHeader& header,
                                     uint64_t file_bytes, const std::vector<int64_t>& sample_shape,
                                     int64_t count, uint64_t key) {
  if (std::memcmp(header.magic, kCacheMagic, sizeof header.magic) != 0) {
    refuse(path, "not a NeuroFlux activation cache (bad magic, expected \"NFCACHE1\")");
  }
  if (header.version != kCacheFormatVersion) {
    refuse(path, "unsupported cache format version " + std::to_string(header.version) +
                     " (this build reads version " + std::to_string(kCacheFormatVersion) + ")");
  }
  if (header.header_crc != header_crc_of(header)) refuse(path, "corrupt: header checksum mismatch");
  // The key first: a file from another config or other weights is stale whatever its shape.
  if (header.key != key) {
    refuse(path, "stale: produced by key " + hex(header.key) + ", expected " + hex(key));
  }
  at::ScalarType dtype;
  if (header.dtype == kDtypeFloat32) {
    dtype = at::kFloat;
  } else if (header.dtype == kDtypeFloat16) {
    dtype = at::kHalf;
  } else {
    refuse(path, "corrupt: unknown dtype code " + std::to_string(header.dtype));
  }
  if (header.ndim > kCacheMaxDims) {
    refuse(path, "corrupt: " + std::to_string(header.ndim) + " sample dims (at most " +
                     std::to_string(kCacheMaxDims) + ")");
  }
  if (header.ndim != sample_shape.size() ||
      !std::equal(sample_shape.begin(), sample_shape.end(), header.dims)) {
    refuse(path, "shape mismatch: file holds samples of shape " +
                     shape_text(header.dims, header.ndim) + ", expected " +
                     shape_text(sample_shape.data(), sample_shape.size()));
  }
  if (header.count != count) {
    refuse(path, "count mismatch: file holds " + std::to_string(header.count) +
                     " samples, expected " + std::to_string(count));
  }
  uint64_t expected_data = static_cast<uint64_t>(count) * at::elementSize(dtype);
  for (int64_t d : sample_shape) expected_data *= static_cast<uint64_t>(d);
  if (header.data_bytes != expected_data) {
    refuse(path, "corrupt: header says " + std::to_string(header.data_bytes) +
                     " data bytes, its shape and count make " + std::to_string(expected_data));
  }
  const uint64_t expected_file = kCacheHeaderBytes + expected_data;
  if (file_bytes < expected_file) {
    refuse(path, "truncated: expected " + std::to_string(expected_file) + " bytes, file has " +
                     std::to_string(file_bytes));
  }
  if (file_bytes > expected_file) {
    refuse(path, "corrupt: expected " + std::to_string(expected_file) + " bytes, file has " +
                     std::to_string(file_bytes) + " (trailing data)");
  }
  return dtype;
}

std::shared_ptr<FileMapping> FileMapping::map(const std::string& path, int fd, size_t bytes,
                                              bool writable) {
  const int protection = writable ? PROT_READ | PROT_WRITE : PROT_READ;
  void* base = ::mmap(nullptr, bytes, protection, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    throw DataError(path + ": cannot memory-map " + std::to_string(bytes) +
                    " bytes: " + std::strerror(errno));
  }
  return std::shared_ptr<FileMapping>(new FileMapping(path, static_cast<char*>(base), bytes));
}

FileMapping::~FileMapping() { ::munmap(base_, bytes_); }

at::Tensor FileMapping::tensor(size_t offset, at::IntArrayRef sizes, at::ScalarType dtype) {
  TORCH_INTERNAL_ASSERT(offset <= bytes_);
  // The deleter holds the mapping: pages stay mapped while any tensor over them lives.
  std::shared_ptr<FileMapping> self = shared_from_this();
  return at::from_blob(
      base_ + offset, sizes, [self](void*) {}, at::TensorOptions().dtype(dtype));
}

void FileMapping::sync() const {
  if (::msync(base_, bytes_, MS_SYNC) != 0) {
    throw DataError(path_ + ": cannot flush the activation cache to disk: " + std::strerror(errno));
  }
}

void FileMapping::make_read_only() {
  if (::mprotect(base_, bytes_, PROT_READ) != 0)
    throw Error(path_ + ": cannot make the activation cache read-only: " + std::strerror(errno));
}

void FileMapping::advise(int advice) const { ::madvise(base_, bytes_, advice); }

std::shared_ptr<FileMapping> create_mapped_file(const std::string& path, uint64_t data_bytes) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw DataError(path + ": cannot create the activation cache file: " + std::strerror(errno));
  }
  const uint64_t total = kCacheHeaderBytes + data_bytes;
  try {
    if (::ftruncate(fd, static_cast<off_t>(total)) != 0) {
      throw DataError(path + ": cannot size the activation cache file to " + std::to_string(total) +
                      " bytes: " + std::strerror(errno));
    }
    // Reserve the blocks now: a full disk is an error here, not a SIGBUS on a later write through
    // the mapping. File systems without fallocate (EOPNOTSUPP, EINVAL) keep the sparse file.
    const int reserved = ::posix_fallocate(fd, 0, static_cast<off_t>(total));
    if (reserved == ENOSPC || reserved == EFBIG || reserved == EIO) {
      throw DataError(path + ": cannot reserve " + std::to_string(total) +
                      " bytes for the activation cache: " + std::strerror(reserved));
    }
    auto mapping = FileMapping::map(path, fd, static_cast<size_t>(total), /*writable=*/true);
    const int closed = ::close(fd);
    fd = -1;
    if (closed != 0)
      throw DataError(path + ": cannot close the activation cache file: " + std::strerror(errno));
    return mapping;
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(path.c_str());
    throw;
  }
}

}  // namespace neuroflux::detail
