#include "neuroflux/recompute/offload_store.h"

#include <ATen/ops/empty.h>
#include <c10/core/Event.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/util/errors.h"

namespace neuroflux {

namespace {

// One background thread runs the copies in order, so a prefetch never overtakes the offload of
// the same slot.
class CopyWorker {
 public:
  CopyWorker() : thread_([this] { loop(); }) {}
  ~CopyWorker() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }

  template <typename Result>
  std::shared_future<Result> submit(std::function<Result()> job) {
    auto task = std::make_shared<std::packaged_task<Result()>>(std::move(job));
    std::shared_future<Result> done = task->get_future().share();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.emplace_back([task] { (*task)(); });
    }
    wake_.notify_one();
    return done;
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();   // packaged_task keeps any exception for the waiting side
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::thread thread_;
};

// A memory-mapped temporary file, unlinked at once: host memory outside the tracked budget that
// the kernel can page out, as a real offload target would be.
class MappedFile {
 public:
  MappedFile(const std::string& dir, size_t bytes) : bytes_(std::max<size_t>(bytes, 1)) {
    std::string pattern = dir + "/neuroflux-offload-XXXXXX";
    fd_ = ::mkstemp(pattern.data());
    if (fd_ < 0) fail(dir, "cannot create an offload file", errno);
    ::unlink(pattern.c_str());
    if (::ftruncate(fd_, static_cast<off_t>(bytes_)) != 0)
      fail(dir, "cannot size an offload file to " + std::to_string(bytes_) + " bytes", errno);
    // Reserve the blocks now: on a full disk a copy through the mapping would be a SIGBUS. File
    // systems without fallocate (EOPNOTSUPP, EINVAL) keep the sparse file.
    const int reserved = ::posix_fallocate(fd_, 0, static_cast<off_t>(bytes_));
    if (reserved != 0 && reserved != EOPNOTSUPP && reserved != EINVAL)
      fail(dir, "cannot reserve " + std::to_string(bytes_) + " bytes for an offload file",
           reserved);
    data_ = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (data_ == MAP_FAILED) {
      const int error = errno;
      ::close(fd_);
      throw Error("offload: cannot map " + std::to_string(bytes_) +
                  " bytes: " + std::strerror(error));
    }
  }
  ~MappedFile() {
    ::munmap(data_, bytes_);
    ::close(fd_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  /// A file that cannot be made is a data error (exit 3) naming the directory (the file itself
  /// is already unlinked) and the system's reason.
  [[noreturn]] void fail(const std::string& dir, const std::string& what, int error) {
    if (fd_ >= 0) ::close(fd_);
    throw DataError(dir + ": " + what + " (memory.offload_dir): " + std::strerror(error));
  }

  size_t bytes_;
  int fd_ = -1;
  void* data_ = nullptr;
};

std::string temp_dir(const std::string& dir) {
  if (!dir.empty()) return dir;
  const char* env = std::getenv("TMPDIR");
  return env != nullptr && *env != '\0' ? env : "/tmp";
}

}  // namespace

struct OffloadStore::Impl {
  struct Slot {
    std::unique_ptr<MappedFile> file;   // CPU
    at::Tensor pinned;                  // CUDA
    std::vector<int64_t> sizes;
    at::ScalarType dtype = at::kFloat;
    std::shared_future<void> sent;
    std::optional<std::shared_future<at::Tensor>> back;
  };

  c10::Device device;
  std::string dir;
  std::vector<std::unique_ptr<Slot>> slots;
  size_t next_slot = 0;
  OffloadStats stats;
  std::optional<c10::impl::VirtualGuardImpl> guard;   // CUDA: streams and events
  std::optional<c10::Stream> side_stream;
  CopyWorker worker;   // last: joined first, before the slots it copies into go away

  Impl(c10::Device d, std::string where) : device(d), dir(temp_dir(where)) {
    if (!device.is_cpu()) {
      guard.emplace(device.type());
      side_stream = guard->getStreamFromGlobalPool(device);
    }
  }

  Slot& slot_for(const at::Tensor& x) {
    if (next_slot == slots.size()) slots.push_back(std::make_unique<Slot>());
    Slot& slot = *slots[next_slot];
    const size_t bytes = x.nbytes();
    slot.sizes = x.sizes().vec();
    slot.dtype = x.scalar_type();
    slot.back.reset();
    if (device.is_cpu()) {
      if (!slot.file || slot.file->bytes() < bytes) slot.file = std::make_unique<MappedFile>(dir, bytes);
    } else {
      UntrackedScope host_side;
      slot.pinned = at::empty(slot.sizes, at::TensorOptions().dtype(slot.dtype).pinned_memory(true));
    }
    return slot;
  }
};

OffloadStore::OffloadStore(c10::Device device, std::string dir)
    : impl_(std::make_unique<Impl>(device, std::move(dir))) {}

OffloadStore::~OffloadStore() = default;

int64_t OffloadStore::offload(const at::Tensor& x) {
  Impl& d = *impl_;
  Impl::Slot& slot = d.slot_for(x);
  at::Tensor source = x.contiguous();
  if (d.device.is_cpu()) {
    void* target = slot.file->data();
    slot.sent = d.worker.submit<void>([source, target]() mutable {
      std::memcpy(target, source.data_ptr(), source.nbytes());
      source = at::Tensor();   // the device copy is released here, on the copy thread
    });
  } else {
    // The side stream must not read x before the compute stream has finished writing it.
    auto ready = std::make_shared<c10::Event>(d.device.type());
    ready->record(d.guard->getStream(d.device));
    c10::Stream side = *d.side_stream;
    at::Tensor pinned = slot.pinned;
    slot.sent = d.worker.submit<void>([source, pinned, side, ready]() mutable {
      c10::StreamGuard on_side(side);
      ready->block(side);
      pinned.copy_(source, /*non_blocking=*/true);
      c10::impl::VirtualGuardImpl(side.device_type()).synchronizeStream(side);
      source = at::Tensor();
    });
  }
  d.stats.offloaded_bytes += static_cast<int64_t>(x.nbytes());
  ++d.stats.transfers;
  return static_cast<int64_t>(d.next_slot++);
}

void OffloadStore::wait_offloaded(int64_t index) {
  Impl& d = *impl_;
  Impl::Slot& slot = *d.slots.at(static_cast<size_t>(index));
  const auto start = std::chrono::steady_clock::now();
  slot.sent.wait();
  d.stats.wait_seconds +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void OffloadStore::prefetch(int64_t index) {
  Impl& d = *impl_;
  Impl::Slot& slot = *d.slots.at(static_cast<size_t>(index));
  if (slot.back) return;
  const std::vector<int64_t> sizes = slot.sizes;
  const at::TensorOptions options = at::TensorOptions().dtype(slot.dtype).device(d.device);
  if (d.device.is_cpu()) {
    const void* source = slot.file->data();
    slot.back = d.worker.submit<at::Tensor>([sizes, options, source] {
      // Allocated on the copy thread but tracked: the prefetched tensor is inside the budget.
      at::Tensor back = at::empty(sizes, options);
      std::memcpy(back.data_ptr(), source, back.nbytes());
      return back;
    });
  } else {
    c10::Stream side = *d.side_stream;
    c10::Stream compute = d.guard->getStream(d.device);
    at::Tensor pinned = slot.pinned;
    slot.back = d.worker.submit<at::Tensor>([sizes, options, pinned, side, compute] {
      c10::StreamGuard on_side(side);
      at::Tensor back = at::empty(sizes, options);
      back.copy_(pinned, /*non_blocking=*/true);
      c10::impl::VirtualGuardImpl(side.device_type()).synchronizeStream(side);
      back.record_stream(compute);   // used on the compute stream from now on
      return back;
    });
  }
}

at::Tensor OffloadStore::fetch(int64_t index) {
  Impl& d = *impl_;
  Impl::Slot& slot = *d.slots.at(static_cast<size_t>(index));
  prefetch(index);
  const auto start = std::chrono::steady_clock::now();
  at::Tensor back = slot.back->get();
  d.stats.wait_seconds +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  slot.back.reset();   // the store keeps no reference to device memory
  return back;
}

void OffloadStore::new_step() {
  Impl& d = *impl_;
  for (size_t i = 0; i < d.next_slot; ++i) {
    Impl::Slot& slot = *d.slots[i];
    if (slot.sent.valid()) slot.sent.wait();
    if (slot.back) slot.back->wait();
    slot.back.reset();
  }
  d.next_slot = 0;
}

const OffloadStats& OffloadStore::stats() const { return impl_->stats; }

void OffloadStore::reset_stats() { impl_->stats = OffloadStats{}; }

}  // namespace neuroflux
