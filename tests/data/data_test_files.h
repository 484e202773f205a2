// Small data files for the reader tests: IDX, CIFAR records and gzip, written byte by byte so a
// test can break them exactly where it wants.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "temp_dir.h"

namespace neuroflux::data::test {

using Bytes = std::vector<uint8_t>;

using neuroflux::test::TempDir;

inline void write_file(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

inline void put_be32(Bytes& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

inline void put_le(Bytes& out, uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

/// Pixel value of image i at (y, x): distinct per position, so a reader that shuffles or offsets
/// bytes is caught.
inline uint8_t pixel(int64_t i, int64_t y, int64_t x) {
  return static_cast<uint8_t>((i * 37 + y * 11 + x * 3) % 256);
}

/// An IDX image file: magic 0x803, N, H, W, then N*H*W bytes.
inline Bytes idx_images(int64_t n, int64_t h, int64_t w) {
  Bytes out;
  put_be32(out, 0x00000803);
  put_be32(out, static_cast<uint32_t>(n));
  put_be32(out, static_cast<uint32_t>(h));
  put_be32(out, static_cast<uint32_t>(w));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) out.push_back(pixel(i, y, x));
  return out;
}

inline uint8_t label_of(int64_t i, int64_t classes = 10) {
  return static_cast<uint8_t>((i * 7 + 3) % classes);
}

/// An IDX label file: magic 0x801, N, then N label bytes.
inline Bytes idx_labels(int64_t n) {
  Bytes out;
  put_be32(out, 0x00000801);
  put_be32(out, static_cast<uint32_t>(n));
  for (int64_t i = 0; i < n; ++i) out.push_back(label_of(i));
  return out;
}

/// CIFAR records: [coarse label,] label, 3072 pixel bytes (channel-major 3x32x32).
inline Bytes cifar_records(int64_t n, int64_t classes, bool with_coarse, int64_t first = 0) {
  Bytes out;
  for (int64_t i = first; i < first + n; ++i) {
    if (with_coarse) out.push_back(static_cast<uint8_t>(label_of(i, classes) / 5));
    out.push_back(label_of(i, classes));
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t y = 0; y < 32; ++y)
        for (int64_t x = 0; x < 32; ++x) out.push_back(pixel(i + c * 5, y, x));
  }
  return out;
}

inline uint32_t crc32(const Bytes& data) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  uint32_t crc = 0xffffffffu;
  for (uint8_t b : data) crc = table[(crc ^ b) & 0xff] ^ (crc >> 8);
  return crc ^ 0xffffffffu;
}

/// A valid gzip file holding `data` in stored (uncompressed) deflate blocks: the tests then need
/// no zlib of their own, and corrupting a chosen byte has a predictable effect.
inline Bytes gzip_stored(const Bytes& data) {
  Bytes out = {0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff};
  size_t pos = 0;
  do {
    const size_t len = std::min<size_t>(65535, data.size() - pos);
    const bool last = pos + len == data.size();
    out.push_back(last ? 0x01 : 0x00);  // BFINAL, BTYPE = 00 (stored), padding to the byte
    put_le(out, static_cast<uint32_t>(len), 2);
    put_le(out, static_cast<uint32_t>(~len & 0xffff), 2);
    out.insert(out.end(), data.begin() + static_cast<std::ptrdiff_t>(pos),
               data.begin() + static_cast<std::ptrdiff_t>(pos + len));
    pos += len;
  } while (pos < data.size());
  put_le(out, crc32(data), 4);
  put_le(out, static_cast<uint32_t>(data.size()), 4);
  return out;
}

inline Bytes truncated(Bytes bytes, size_t size) {
  bytes.resize(size);
  return bytes;
}

}  // namespace neuroflux::data::test
