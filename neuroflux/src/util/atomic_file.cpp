#include "neuroflux/util/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "neuroflux/util/errors.h"

namespace neuroflux {

namespace fs = std::filesystem;

namespace {

/// fsync of a file or directory, so a rename is not left pointing at data still in the page
/// cache when the power goes (ext4 and xfs may otherwise show an empty file after a crash).
void sync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) throw DataError(path + ": cannot open to sync: " + std::strerror(errno));
  const int synced = ::fsync(fd);
  const int sync_errno = errno;
  ::close(fd);
  // EINVAL: the file system cannot sync this kind of file (some do not sync directories).
  if (synced != 0 && sync_errno != EINVAL)
    throw DataError(path + ": cannot sync to disk: " + std::strerror(sync_errno));
}

/// Parent directories of `path`, as a DataError naming them when they cannot be made.
void create_parents(const std::string& path) {
  const fs::path target(path);
  if (!target.has_parent_path()) return;
  std::error_code error;
  fs::create_directories(target.parent_path(), error);
  if (error)
    throw DataError(target.parent_path().string() + ": cannot create the directory: " +
                    error.message());
}

}  // namespace

std::string temporary_path(const std::string& path) {
  return path + ".tmp-" + std::to_string(::getpid());
}

void write_atomic_with(const std::string& path,
                       const std::function<void(const std::string& temp_path)>& write) {
  const fs::path target(path);
  create_parents(path);
  const std::string temp = temporary_path(path);
  try {
    write(temp);
    sync_path(temp, O_RDONLY);
  } catch (...) {
    std::error_code ignored;
    fs::remove(temp, ignored);
    throw;
  }
  std::error_code error;
  fs::rename(temp, target, error);
  if (error) {
    fs::remove(temp, error);
    throw DataError(path + ": cannot replace the file: " + error.message());
  }
  sync_path(target.has_parent_path() ? target.parent_path().string() : ".",
            O_RDONLY | O_DIRECTORY);
}

void write_file_atomic(const std::string& path, const std::string& content) {
  write_atomic_with(path, [&](const std::string& temp) {
    errno = 0;
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.flush();
    const int write_errno = errno;
    if (!out)
      throw DataError(temp + ": cannot write: " +
                      (write_errno != 0 ? std::strerror(write_errno) : "the stream failed"));
  });
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path + ": cannot open");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void prepare_output_directory(const std::string& dir) {
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) throw DataError(dir + ": cannot create the output directory: " + error.message());
  if (!fs::is_directory(dir, error))
    throw DataError(dir + ": the output directory is not a directory");
  const std::string probe = temporary_path(dir + "/.neuroflux-write-test");
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    throw DataError(dir + ": cannot write in the output directory: " + std::strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

}  // namespace neuroflux
