// Sequential reading of a data file that may be gzip'd, with the offsets and zlib diagnostics the
// readers need for their error messages.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace neuroflux::data::detail {

class ByteStream {
 public:
  /// Opens `path`; gzip is recognised by its magic bytes (1f 8b), never by the file name. A file
  /// that cannot be opened is a DataError naming it.
  explicit ByteStream(const std::string& path);
  ~ByteStream();
  ByteStream(const ByteStream&) = delete;
  ByteStream& operator=(const ByteStream&) = delete;

  /// Reads up to `n` bytes; fewer only where the data ends. A corrupt gzip stream or an I/O
  /// error is a DataError naming the file and the offset reached.
  int64_t read(void* dst, int64_t n);
  /// Reads and discards everything left; returns how many bytes that was.
  int64_t skip_to_end();
  /// True when at least one byte is left (it is consumed). Reading past the end also makes zlib
  /// verify the gzip trailer (CRC and length), so a reader calls this once it has all it needs.
  bool has_more();

  /// Bytes delivered so far: the offset in the decompressed data for a gzip'd file.
  int64_t offset() const { return offset_; }
  bool gzipped() const { return gz_ != nullptr; }
  /// For a gzip'd file, true once the compressed stream was found cut off before its end.
  bool compressed_cut_off() const { return cut_off_; }
  /// Size of the file on disk.
  int64_t file_size() const { return file_size_; }
  /// The most bytes the file can deliver: its size, or for gzip the size times deflate's maximal
  /// compression ratio. Guards allocations against a corrupt header claiming terabytes.
  int64_t max_data_bytes() const;
  const std::string& path() const { return path_; }

  /// " (the gzip stream itself is cut off ...)" when that is why the data ended, else "".
  std::string cut_off_note() const;

 private:
  [[noreturn]] void throw_gzip_error(int errnum, const char* message) const;

  std::string path_;
  std::FILE* file_ = nullptr;
  void* gz_ = nullptr;  // gzFile, kept opaque so this header does not pull in zlib.h
  int64_t offset_ = 0;
  int64_t file_size_ = 0;
  bool cut_off_ = false;
  bool at_end_ = false;
};

}  // namespace neuroflux::data::detail
