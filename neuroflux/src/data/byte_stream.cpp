#include "data/byte_stream.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "neuroflux/util/errors.h"

namespace neuroflux::data::detail {
namespace {

// Deflate cannot compress better than about 1032:1; a gzip'd file can never deliver more.
constexpr int64_t kMaxDeflateRatio = 1032;
// gzread takes an unsigned int length; read in slices well below that.
constexpr int64_t kMaxSlice = int64_t{1} << 30;

gzFile as_gz(void* p) { return static_cast<gzFile>(p); }

}  // namespace

ByteStream::ByteStream(const std::string& path) : path_(path) {
  file_ = std::fopen(path.c_str(), "rb");
  if (file_ == nullptr) {
    throw DataError(path + ": cannot open: " + std::strerror(errno));
  }
  if (std::fseek(file_, 0, SEEK_END) == 0) file_size_ = std::ftell(file_);
  std::rewind(file_);
  unsigned char magic[2] = {0, 0};
  const size_t got = std::fread(magic, 1, 2, file_);
  std::rewind(file_);
  if (got == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
    std::fclose(file_);
    file_ = nullptr;
    gzFile gz = gzopen(path.c_str(), "rb");
    if (gz == nullptr) throw DataError(path + ": cannot open: " + std::strerror(errno));
    // A large buffer: the default 8 KiB costs a system call per 8 KiB of a 26 MB file. No
    // larger than the file, though: zlib allocates three times this, per stream.
    gzbuffer(gz, static_cast<unsigned>(std::clamp<int64_t>(file_size_, 8 << 10, 1 << 20)));
    gz_ = gz;
  }
}

ByteStream::~ByteStream() {
  if (gz_ != nullptr) gzclose(as_gz(gz_));
  if (file_ != nullptr) std::fclose(file_);
}

void ByteStream::throw_gzip_error(int errnum, const char* message) const {
  std::string what = message != nullptr ? message : "unknown zlib error";
  if (errnum == Z_ERRNO) what = std::strerror(errno);
  // zlib prefixes its message with the path, which ours already starts with.
  if (what.rfind(path_ + ": ", 0) == 0) what = what.substr(path_.size() + 2);
  throw DataError(path_ + ": corrupt gzip stream at byte " + std::to_string(offset_) +
                  " of the decompressed data: " + what + " (zlib error " + std::to_string(errnum) +
                  ")");
}

int64_t ByteStream::read(void* dst, int64_t n) {
  auto* out = static_cast<unsigned char*>(dst);
  int64_t total = 0;
  while (total < n && !at_end_) {
    const int64_t want = std::min(n - total, kMaxSlice);
    int64_t got = 0;
    if (gz_ != nullptr) {
      const int r = gzread(as_gz(gz_), out + total, static_cast<unsigned>(want));
      int errnum = Z_OK;
      const char* message = gzerror(as_gz(gz_), &errnum);
      // Z_BUF_ERROR is zlib's "unexpected end of file": the compressed data stops mid-stream.
      // Whatever was decompressed before that is good, so it reads as a short file.
      if (errnum == Z_BUF_ERROR) {
        cut_off_ = true;
      } else if (r < 0 || errnum != Z_OK) {
        throw_gzip_error(errnum, message);
      }
      got = std::max(r, 0);
    } else {
      got = static_cast<int64_t>(std::fread(out + total, 1, static_cast<size_t>(want), file_));
      if (got < want && std::ferror(file_)) {
        throw DataError(path_ + ": read error at byte " + std::to_string(offset_ + got) + ": " +
                        std::strerror(errno));
      }
    }
    total += got;
    offset_ += got;
    if (got < want) at_end_ = true;
  }
  return total;
}

int64_t ByteStream::skip_to_end() {
  if (gz_ == nullptr && file_size_ >= offset_ && std::fseek(file_, 0, SEEK_END) == 0) {
    // A plain file's end is known: no need to read up to it.
    const int64_t skipped = file_size_ - offset_;
    offset_ = file_size_;
    at_end_ = true;
    return skipped;
  }
  // Uninitialised on purpose: zero-filling a scratch buffer per call cost more than the reads
  // for the small files a fuzzer feeds.
  constexpr int64_t kScratch = 64 << 10;
  const std::unique_ptr<unsigned char[]> scratch(new unsigned char[kScratch]);
  int64_t skipped = 0;
  while (true) {
    const auto got = read(scratch.get(), kScratch);
    skipped += got;
    if (got < kScratch) return skipped;
  }
}

bool ByteStream::has_more() {
  unsigned char byte = 0;
  return read(&byte, 1) == 1;
}

int64_t ByteStream::max_data_bytes() const {
  if (gz_ == nullptr) return file_size_;
  if (file_size_ > std::numeric_limits<int64_t>::max() / kMaxDeflateRatio) {
    return std::numeric_limits<int64_t>::max();
  }
  return file_size_ * kMaxDeflateRatio;
}

std::string ByteStream::cut_off_note() const {
  if (!cut_off_) return "";
  return " (the gzip stream itself is cut off: the compressed file is " +
         std::to_string(file_size_) + " bytes and ends mid-stream)";
}

}  // namespace neuroflux::data::detail
