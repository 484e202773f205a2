// Checksums for NeuroFlux's own files: crc32 guards a file's bytes against corruption (the
// activation cache, the decoded image-folder cache), FNV-1a turns what a file was made from into
// a short key that tells stale files apart.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace neuroflux {

/// zlib crc32 of `bytes` bytes, continuing from `crc` (0 starts a new checksum), fed in chunks
/// because zlib takes a 32-bit length.
uint32_t crc32_of(const void* data, uint64_t bytes, uint32_t crc = 0);

constexpr uint64_t kFnv1aStart = 1469598103934665603ULL;

/// FNV-1a over `bytes` bytes, continuing from `hash`: cheap, stable across runs and machines, and
/// enough to tell caches apart (not a defence against anyone crafting collisions).
uint64_t fnv1a(const void* data, size_t bytes, uint64_t hash = kFnv1aStart);

/// A key or checksum as error messages show it: "0x" and 16 hex digits.
std::string hex64(uint64_t value);

}  // namespace neuroflux
