// Byte sizes as people write them: "64MiB", "1.5GiB", "512KB", "123456", "none".
#pragma once

#include <c10/util/ArrayRef.h>

#include <cstdint>
#include <optional>
#include <string>

namespace neuroflux {

/// Parses a size. Binary (KiB, MiB, GiB) and decimal (KB, MB, GB) suffixes, case-insensitive, an
/// optional "B", a plain byte count. "none" / "unbounded" give nullopt. Throws std::invalid_argument
/// with a message saying what was expected.
std::optional<int64_t> parse_size(const std::string& text);

/// "61.2 MiB (64172851 bytes)"-style rendering; `with_bytes` appends the exact count.
std::string format_size(int64_t bytes, bool with_bytes = false);

/// A tensor shape as error messages show it: "[2, 3, 28, 28]".
std::string shape_string(c10::ArrayRef<int64_t> shape);

}  // namespace neuroflux
