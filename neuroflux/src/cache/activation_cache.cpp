#include "neuroflux/cache/activation_cache.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "cache/cache_file.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/util/atomic_file.h"

namespace neuroflux {

namespace fs = std::filesystem;

struct ActivationCache::Storage {
  at::Tensor data;            ///< [count, sample_shape...] in the storage dtype
  std::vector<bool> written;  ///< per sample, until finish(): every sample must be written once
  uint32_t checksum = 0;      ///< crc32 of data's bytes: from finish(), or the verified header
  // Disk only.
  std::shared_ptr<detail::FileMapping> mapping;  ///< the whole file, header included
  std::string path;                              ///< final name
  std::string temp_path;                         ///< name while being written
};

namespace {

void check_sample_shape(const std::vector<int64_t>& sample_shape, int64_t count) {
  TORCH_CHECK(count >= 0, "ActivationCache: count must be >= 0, got ", count);
  TORCH_CHECK(sample_shape.size() <= detail::kCacheMaxDims, "ActivationCache: at most ",
              detail::kCacheMaxDims, " sample dims, got ", sample_shape.size());
  for (int64_t d : sample_shape) {
    TORCH_CHECK(d > 0, "ActivationCache: sample dims must be positive, got ",
                at::IntArrayRef(sample_shape));
  }
}

std::vector<int64_t> full_sizes(int64_t count, const std::vector<int64_t>& sample_shape) {
  std::vector<int64_t> sizes{count};
  sizes.insert(sizes.end(), sample_shape.begin(), sample_shape.end());
  return sizes;
}

const void* bytes_of(const at::Tensor& t) { return t.numel() > 0 ? t.data_ptr() : nullptr; }

}  // namespace

std::shared_ptr<ActivationCache> ActivationCache::create(const CacheOptions& options,
                                                         std::vector<int64_t> sample_shape,
                                                         int64_t count, uint64_t key) {
  TORCH_CHECK(options.where == "host" || options.where == "disk",
              "ActivationCache: where must be \"host\" or \"disk\", got \"", options.where, "\"");
  TORCH_CHECK(options.dtype == at::kFloat || options.dtype == at::kHalf,
              "ActivationCache: dtype must be float32 or float16, got ", options.dtype);
  check_sample_shape(sample_shape, count);
  TORCH_CHECK(options.where == "host" || !options.path.empty(),
              "ActivationCache: a disk cache needs a path");

  std::shared_ptr<ActivationCache> cache(new ActivationCache());
  cache->sample_shape_ = std::move(sample_shape);
  cache->count_ = count;
  cache->dtype_ = options.dtype;
  cache->where_ = options.where;
  cache->key_ = key;
  auto storage = std::make_unique<Storage>();
  storage->written.assign(static_cast<size_t>(count), false);
  const std::vector<int64_t> sizes = full_sizes(count, cache->sample_shape_);
  if (options.where == "host") {
    // Outside the device budget by design (docs/architecture.md): neither counted nor limited.
    UntrackedScope untracked;
    storage->data = at::empty(sizes, at::TensorOptions().dtype(options.dtype));
  } else {
    const fs::path target(options.path);
    std::error_code error;
    if (target.has_parent_path()) fs::create_directories(target.parent_path(), error);
    if (error) {
      throw DataError(options.path + ": cannot create the cache directory: " + error.message());
    }
    // Written under the name write_atomic_with uses, renamed into place by finish(): a run killed
    // before then leaves only the temporary, never a half-written file at `path`.
    storage->path = options.path;
    storage->temp_path = temporary_path(options.path);
    storage->mapping = detail::create_mapped_file(storage->temp_path,
                                                  static_cast<uint64_t>(cache->bytes()));
    storage->data = storage->mapping->tensor(detail::kCacheHeaderBytes, sizes, options.dtype);
  }
  cache->storage_ = std::move(storage);
  return cache;
}

std::shared_ptr<ActivationCache> ActivationCache::open(const std::string& path,
                                                       const std::vector<int64_t>& sample_shape,
                                                       int64_t count, uint64_t key) {
  check_sample_shape(sample_shape, count);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw DataError(path + ": cannot open the activation cache: " + std::strerror(errno));
  std::shared_ptr<detail::FileMapping> mapping;
  at::ScalarType dtype = at::kFloat;
  uint32_t checksum = 0;
  try {
    struct stat info {};
    if (::fstat(fd, &info) != 0) {
      throw DataError(path + ": cannot stat the activation cache: " + std::strerror(errno));
    }
    if (!S_ISREG(info.st_mode)) throw DataError(path + ": not a regular file");
    const auto file_bytes = static_cast<uint64_t>(info.st_size);
    if (file_bytes < detail::kCacheHeaderBytes) {
      throw DataError(path + ": truncated: expected at least a " +
                      std::to_string(detail::kCacheHeaderBytes) + "-byte header, file has " +
                      std::to_string(file_bytes) + " bytes; the activation cache is not used");
    }
    detail::CacheFileHeader header;
    const ssize_t got = ::pread(fd, &header, sizeof header, 0);
    if (got != static_cast<ssize_t>(sizeof header)) {
      throw DataError(path + ": cannot read the cache header: " +
                      (got < 0 ? std::string(std::strerror(errno)) : "short read"));
    }
    dtype = detail::validate_cache_header(path, header, file_bytes, sample_shape, count, key);
    mapping = detail::FileMapping::map(path, fd, static_cast<size_t>(file_bytes),
                                       /*writable=*/false);
    ::close(fd);
    // Every byte is read once to verify it: sequential read-ahead, then back to normal for the
    // shuffled reads of training.
    mapping->advise(MADV_SEQUENTIAL);
    const uint32_t crc = detail::crc32_of(mapping->base() + detail::kCacheHeaderBytes,
                                          header.data_bytes);
    mapping->advise(MADV_NORMAL);
    if (crc != header.data_crc) {
      throw DataError(path + ": corrupt: checksum mismatch (header " +
                      std::to_string(header.data_crc) + ", data " + std::to_string(crc) +
                      "); the activation cache is not used");
    }
    checksum = crc;
  } catch (...) {
    if (!mapping) ::close(fd);
    throw;
  }

  std::shared_ptr<ActivationCache> cache(new ActivationCache());
  cache->sample_shape_ = sample_shape;
  cache->count_ = count;
  cache->dtype_ = dtype;
  cache->where_ = "disk";
  cache->key_ = key;
  auto storage = std::make_unique<Storage>();
  storage->data = mapping->tensor(detail::kCacheHeaderBytes, full_sizes(count, sample_shape), dtype);
  storage->mapping = std::move(mapping);
  storage->path = path;
  storage->checksum = checksum;
  cache->storage_ = std::move(storage);
  cache->finished_ = true;
  return cache;
}

ActivationCache::~ActivationCache() {
  if (!storage_ || finished_ || where_ != "disk") return;
  // Unfinished: drop the mapping, then the temporary; `path` was never touched.
  storage_->data = at::Tensor();
  storage_->mapping.reset();
  ::unlink(storage_->temp_path.c_str());
}

void ActivationCache::write(int64_t offset, const at::Tensor& batch) {
  TORCH_CHECK(!finished_, "ActivationCache::write(): the cache is finished; writes are refused");
  TORCH_CHECK(batch.defined(), "ActivationCache::write(): undefined batch");
  TORCH_CHECK(at::isFloatingType(batch.scalar_type()),
              "ActivationCache::write(): batch must be floating point, got ", batch.scalar_type());
  const auto ndim = static_cast<int64_t>(sample_shape_.size());
  TORCH_CHECK(batch.dim() == ndim + 1 && batch.sizes().slice(1) == at::IntArrayRef(sample_shape_),
              "ActivationCache::write(): batch of shape ", batch.sizes(),
              " does not hold samples of shape ", at::IntArrayRef(sample_shape_));
  const int64_t b = batch.size(0);
  TORCH_CHECK(offset >= 0 && offset <= count_ - b, "ActivationCache::write(): samples [", offset,
              ", ", offset + b, ") are outside the cache's [0, ", count_, ")");
  // copy_ converts dtype and moves across devices in one step; the batch's graph is not recorded.
  at::NoGradGuard no_grad;
  storage_->data.narrow(0, offset, b).copy_(batch.detach());
  std::fill_n(storage_->written.begin() + offset, b, true);
}

void ActivationCache::finish() {
  TORCH_CHECK(!finished_, "ActivationCache::finish(): already finished");
  Storage& s = *storage_;
  const auto unwritten = std::find(s.written.begin(), s.written.end(), false);
  TORCH_CHECK(unwritten == s.written.end(), "ActivationCache::finish(): sample ",
              unwritten - s.written.begin(), " of ", count_, " was never written");
  s.checksum = detail::crc32_of(bytes_of(s.data), static_cast<uint64_t>(bytes()));
  if (where_ == "disk") {
    const detail::CacheFileHeader header = detail::make_cache_header(
        dtype_, sample_shape_, count_, key_, static_cast<uint64_t>(bytes()), s.checksum);
    std::memcpy(s.mapping->base(), &header, sizeof header);
    // Data and header reach the file before the rename publishes it.
    write_atomic_with(s.path, [&](const std::string& temp) {
      TORCH_INTERNAL_ASSERT(temp == s.temp_path, "temporary name changed: ", temp, " vs ",
                            s.temp_path);
      s.mapping->sync();
    });
    s.mapping->make_read_only();
  }
  s.written = std::vector<bool>();
  finished_ = true;
}

at::Tensor ActivationCache::gather(const at::Tensor& indices) const {
  TORCH_CHECK(finished_, "ActivationCache::gather(): reads before finish() are refused");
  TORCH_CHECK(indices.defined() && indices.dim() == 1 && indices.scalar_type() == at::kLong,
              "ActivationCache::gather(): indices must be a 1-D int64 tensor, got ",
              indices.defined() ? indices.toString() : "undefined", " of shape ",
              indices.defined() ? indices.sizes() : at::IntArrayRef());
  at::NoGradGuard no_grad;
  const at::Tensor index = indices.device().is_cpu() ? indices : indices.cpu();
  if (index.numel() > 0) {
    const auto [lowest, highest] = at::aminmax(index);
    const int64_t lo = lowest.item<int64_t>();
    const int64_t hi = highest.item<int64_t>();
    TORCH_CHECK(lo >= 0 && hi < count_, "ActivationCache::gather(): index ", lo < 0 ? lo : hi,
                " is outside [0, ", count_, ")");
  }
  // index_select allocates the batch on this thread, so the MemoryMeter counts it; for float32
  // storage .to(kFloat) returns it as is.
  return storage_->data.index_select(0, index).to(at::kFloat);
}

at::Tensor ActivationCache::slice(int64_t start, int64_t length) const {
  TORCH_CHECK(finished_, "ActivationCache::slice(): reads before finish() are refused");
  TORCH_CHECK(start >= 0 && length >= 0 && start <= count_ - length,
              "ActivationCache::slice(): samples [", start, ", ", start + length,
              ") are outside [0, ", count_, ")");
  // copy = true: never hand out a view of the storage (or of the file's mapping).
  return storage_->data.narrow(0, start, length)
      .to(at::kFloat, /*non_blocking=*/false, /*copy=*/true);
}

int64_t ActivationCache::bytes() const {
  int64_t n = count_ * static_cast<int64_t>(at::elementSize(dtype_));
  for (int64_t d : sample_shape_) n *= d;
  return n;
}

}  // namespace neuroflux
