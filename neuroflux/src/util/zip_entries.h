// Checks a LibTorch archive (a zip file) against the CRC-32s it stores, which LibTorch's own
// reader never checks: a flipped bit in a weight would otherwise load silently.
#pragma once

#include <string>

namespace neuroflux {

/// Checks each zip entry of `bytes` (the content of the file `path`) against the CRC-32 the zip
/// stores for it. LibTorch writes its archives and TorchScript modules uncompressed ("stored"), so
/// an entry's bytes are checksummed as they lie. An entry or central directory that does not fit
/// in the file is refused too: LibTorch would allocate what a damaged size says. Throws DataError
/// naming `path` and the entry. What this does not read (ZIP64-only sizes or offsets, compressed
/// entries, no end record at all) is left to LibTorch, which names its own errors.
void check_zip_entries(const std::string& path, const std::string& bytes);

}  // namespace neuroflux
