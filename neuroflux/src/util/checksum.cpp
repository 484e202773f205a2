#include "util/checksum.h"

#include <zlib.h>

#include <algorithm>
#include <iomanip>
#include <sstream>

namespace neuroflux {

uint32_t crc32_of(const void* data, uint64_t bytes, uint32_t crc) {
  uLong value = crc;
  const auto* p = static_cast<const Bytef*>(data);
  constexpr uint64_t kChunk = uint64_t{1} << 30;
  while (bytes > 0) {
    const uint64_t n = std::min(bytes, kChunk);
    value = ::crc32(value, p, static_cast<uInt>(n));
    p += n;
    bytes -= n;
  }
  return static_cast<uint32_t>(value);
}

uint64_t fnv1a(const void* data, size_t bytes, uint64_t hash) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) hash = (hash ^ p[i]) * 1099511628211ULL;
  return hash;
}

std::string hex64(uint64_t value) {
  std::ostringstream out;
  out << "0x" << std::hex << std::setw(16) << std::setfill('0') << value;
  return out.str();
}

}  // namespace neuroflux
