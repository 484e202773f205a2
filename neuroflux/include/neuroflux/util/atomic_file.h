// Files that are either the old version or the new one, never half-written: everything is
// written to "<path>.tmp-<pid>" and renamed over the target (rename is atomic on POSIX).
#pragma once

#include <functional>
#include <string>

namespace neuroflux {

/// Where a file is written before it is renamed onto `path`: "<path>.tmp-<pid>", so two processes
/// never share one, and a leftover names the process that died writing it.
std::string temporary_path(const std::string& path);

/// Writes `content` to `path` atomically, creating parent directories.
void write_file_atomic(const std::string& path, const std::string& content);

/// Calls `write(temp_path)` and renames the result onto `path`; for writers that want a file name
/// (torch::save). On failure the temporary is removed and `path` is untouched.
void write_atomic_with(const std::string& path,
                       const std::function<void(const std::string& temp_path)>& write);

std::string read_file(const std::string& path);

/// Creates `dir` (and its parents) and checks that a file can be written in it: a DataError
/// naming the directory and the system's reason otherwise, before any work would be lost.
void prepare_output_directory(const std::string& dir);

}  // namespace neuroflux
