#include "neuroflux/util/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <torch/serialize/output-archive.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

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

/// Renames the finished `temp` onto `path` and syncs the directory, so the new name survives a
/// power loss too.
void publish(const std::string& temp, const std::string& path) {
  const fs::path target(path);
  std::error_code error;
  fs::rename(temp, target, error);
  if (error) {
    std::error_code ignored;
    fs::remove(temp, ignored);
    throw DataError(path + ": cannot replace the file: " + error.message());
  }
  sync_path(target.has_parent_path() ? target.parent_path().string() : ".", O_RDONLY | O_DIRECTORY);
}

/// An open temporary that takes bytes and remembers the first failed write. It never throws
/// while bytes come in (torch's archive writer calls it from inside miniz, and cannot unwind an
/// exception from there, nor take a short count without aborting), so after the first failure
/// it drops the rest and finish() reports the failure.
class TempFile {
 public:
  TempFile(std::string path, std::string temp) : path_(std::move(path)), temp_(std::move(temp)) {
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);  // less umask
    if (fd_ < 0) throw DataError(path_ + ": cannot create " + temp_ + ": " + std::strerror(errno));
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!finished_) ::unlink(temp_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  size_t write(const void* data, size_t bytes) {
    const auto* p = static_cast<const char*>(data);
    size_t left = bytes;
    while (left > 0 && error_ == 0) {
      const ssize_t n = ::write(fd_, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        // No progress and no error: a device that takes nothing (ENOSPC on some file systems).
        error_ = n < 0 ? errno : ENOSPC;
        break;
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
    return bytes;
  }

  /// Data on disk (fsync) and the descriptor closed, each checked: a full disk can show up as late
  /// as close() on some file systems (NFS, quota).
  void finish() {
    if (error_ == 0 && ::fsync(fd_) != 0 && errno != EINVAL) error_ = errno;
    const int closed = ::close(fd_);
    fd_ = -1;
    if (error_ == 0 && closed != 0) error_ = errno;
    if (error_ != 0) throw DataError(path_ + ": cannot write: " + std::strerror(error_));
    finished_ = true;
  }

 private:
  std::string path_, temp_;
  int fd_ = -1;
  int error_ = 0;
  bool finished_ = false;
};

}  // namespace

std::string temporary_path(const std::string& path) {
  return path + ".tmp-" + std::to_string(::getpid());
}

void write_atomic_with(const std::string& path,
                       const std::function<void(const std::string& temp_path)>& write) {
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
  publish(temp, path);
}

void write_atomic_bytes(const std::string& path,
                        const std::function<void(const ByteSink& sink)>& produce) {
  create_parents(path);
  const std::string temp = temporary_path(path);
  {
    TempFile file(path, temp);
    produce([&file](const void* data, size_t bytes) { return file.write(data, bytes); });
    file.finish();
  }
  publish(temp, path);
}

void write_file_atomic(const std::string& path, const std::string& content) {
  write_atomic_bytes(path, [&](const ByteSink& sink) { sink(content.data(), content.size()); });
}

void write_archive_atomic(const std::string& path, torch::serialize::OutputArchive& archive) {
  write_atomic_bytes(path, [&](const ByteSink& sink) { archive.save_to(sink); });
}

void remove_stale_temporaries(const std::string& dir) {
  std::error_code error;
  for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
    const std::string name = it->path().filename().string();
    const size_t tag = name.rfind(".tmp-");
    if (tag == std::string::npos) continue;
    const std::string digits = name.substr(tag + 5);
    if (digits.empty() || digits.size() > 9 ||
        digits.find_first_not_of("0123456789") != std::string::npos)
      continue;
    const auto pid = static_cast<pid_t>(std::stol(digits));
    // Only a writer that is gone: kill(pid, 0) fails with ESRCH. A live one (EPERM: another
    // user's) may still rename its file into place.
    if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    std::error_code ignored;
    fs::remove(it->path(), ignored);
  }
}

std::string read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw DataError(path + ": cannot open: " + std::strerror(errno));
  std::string content;
  struct stat info {};
  // The size is a hint (files in /proc report 0); reading goes on to the end either way.
  if (::fstat(fd, &info) == 0 && S_ISREG(info.st_mode) && info.st_size > 0)
    content.reserve(static_cast<size_t>(info.st_size));
  char chunk[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {  // EISDIR for a directory, EIO for a failing disk
      const int read_errno = errno;
      ::close(fd);
      throw DataError(path + ": cannot read: " + std::strerror(read_errno));
    }
    if (n == 0) break;
    content.append(chunk, static_cast<size_t>(n));
  }
  ::close(fd);
  return content;
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
  remove_stale_temporaries(dir);
}

}  // namespace neuroflux
