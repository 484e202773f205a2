#include "util/zip_entries.h"

#include <algorithm>
#include <cstdint>

#include "neuroflux/util/errors.h"
#include "util/checksum.h"

namespace neuroflux {

namespace {

uint16_t zip_u16(const std::string& bytes, size_t at) {
  const auto byte = [&](size_t i) { return static_cast<unsigned>(static_cast<uint8_t>(bytes[i])); };
  return static_cast<uint16_t>(byte(at) | byte(at + 1) << 8);
}

uint32_t zip_u32(const std::string& bytes, size_t at) {
  return zip_u16(bytes, at) | static_cast<uint32_t>(zip_u16(bytes, at + 2)) << 16;
}

}  // namespace

void check_zip_entries(const std::string& path, const std::string& bytes) {
  const auto damaged = [&](const std::string& problem) {
    return DataError(path + ": damaged archive: " + problem);
  };
  constexpr size_t kEndRecord = 22, kCentralEntry = 46, kLocalHeader = 30;
  if (bytes.size() < kEndRecord) return;
  // The end-of-central-directory record: the last 22 bytes, or before a comment of up to 64 KiB.
  const size_t lowest =
      bytes.size() - kEndRecord - std::min<size_t>(bytes.size() - kEndRecord, 0xffff);
  size_t end = bytes.size() - kEndRecord;
  while (zip_u32(bytes, end) != 0x06054b50) {
    if (end == lowest) return;  // not a zip archive: LibTorch says so
    --end;
  }
  const uint16_t entries = zip_u16(bytes, end + 10);
  const uint32_t directory_bytes = zip_u32(bytes, end + 12);
  const uint32_t directory = zip_u32(bytes, end + 16);
  if (entries == 0xffff || directory_bytes == 0xffffffff || directory == 0xffffffff) return;
  if (uint64_t{directory} + directory_bytes > end) throw damaged("central directory out of bounds");
  size_t at = directory;
  for (uint16_t i = 0; i < entries; ++i) {
    if (at + kCentralEntry > uint64_t{directory} + directory_bytes ||
        zip_u32(bytes, at) != 0x02014b50)
      throw damaged("central directory entry " + std::to_string(i) + " is not one");
    const uint16_t method = zip_u16(bytes, at + 10);
    const uint32_t crc = zip_u32(bytes, at + 16);
    const uint32_t stored_bytes = zip_u32(bytes, at + 20);
    const uint32_t size = zip_u32(bytes, at + 24);
    const size_t name_bytes = zip_u16(bytes, at + 28);
    const size_t entry_bytes =
        kCentralEntry + name_bytes + zip_u16(bytes, at + 30) + zip_u16(bytes, at + 32);
    const uint32_t local = zip_u32(bytes, at + 42);
    if (at + entry_bytes > uint64_t{directory} + directory_bytes)
      throw damaged("central directory entry " + std::to_string(i) + " out of bounds");
    const std::string name = bytes.substr(at + kCentralEntry, name_bytes);
    at += entry_bytes;
    if (stored_bytes == 0xffffffff || size == 0xffffffff || local == 0xffffffff) continue;
    if (method != 0 || stored_bytes != size) continue;  // compressed: not LibTorch's writing
    if (uint64_t{local} + kLocalHeader > directory || zip_u32(bytes, local) != 0x04034b50)
      throw damaged("no local header for \"" + name + "\"");
    const uint64_t data =
        uint64_t{local} + kLocalHeader + zip_u16(bytes, local + 26) + zip_u16(bytes, local + 28);
    if (data + size > directory) throw damaged("\"" + name + "\" out of bounds");
    if (crc32_of(bytes.data() + data, size) != crc)
      throw damaged("CRC-32 mismatch in \"" + name + "\"");
  }
}

}  // namespace neuroflux
