// Files that are either the old version or the new one, never half-written: everything is
// written to "<path>.tmp-<pid>" and renamed over the target (rename is atomic on POSIX).
// A write that fails (a full disk, a file size limit) is a DataError naming the file and the
// system's reason; the temporary is removed and the old file stays as it was.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace torch::serialize {
class OutputArchive;
}

namespace neuroflux {

/// Where a file is written before it is renamed onto `path`: "<path>.tmp-<pid>", so two processes
/// never share one, and a leftover names the process that died writing it.
std::string temporary_path(const std::string& path);

/// Writes `content` to `path` atomically, creating parent directories.
void write_file_atomic(const std::string& path, const std::string& content);

/// Takes `bytes` bytes at `data` and returns how many it took: always all of them (a failed write
/// is reported when the file is finished, not to the producer).
using ByteSink = std::function<size_t(const void* data, size_t bytes)>;

/// Writes what `produce` feeds its sink to `path` atomically, every write, fsync and close
/// checked: for writers that produce a file in pieces.
void write_atomic_bytes(const std::string& path,
                        const std::function<void(const ByteSink& sink)>& produce);

/// Saves a torch archive (weights, optimizer state) to `path` atomically. Not through
/// OutputArchive::save_to(filename): its writer aborts the process when a write fails.
void write_archive_atomic(const std::string& path, torch::serialize::OutputArchive& archive);

/// Calls `write(temp_path)` and renames the result onto `path`; for writers that need a file name
/// (a memory-mapped file). On failure the temporary is removed and `path` is untouched.
void write_atomic_with(const std::string& path,
                       const std::function<void(const std::string& temp_path)>& write);

/// The whole content of `path`. A file that cannot be opened or read (missing, a directory, no
/// permission, an I/O error) is a DataError naming it and the system's reason.
std::string read_file(const std::string& path);

/// Removes the temporaries that writers now dead (a killed run) left in `dir`, not in its
/// subdirectories: "<name>.tmp-<pid>" files whose process is gone. Files of live processes and
/// everything else stay.
void remove_stale_temporaries(const std::string& dir);

/// Creates `dir` (and its parents) and checks that a file can be written in it: a DataError
/// naming the directory and the system's reason otherwise, before any work would be lost.
/// Then removes the temporaries a killed run left there (remove_stale_temporaries).
void prepare_output_directory(const std::string& dir);

}  // namespace neuroflux
