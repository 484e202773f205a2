#include "neuroflux/distributed/communicator.h"

// LibTorch's CMake config defines USE_C10D_GLOO; without it the Gloo header is empty.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace neuroflux {

namespace {

std::string describe(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown failure";
  }
}

class GlooPending final : public PendingOp {
 public:
  GlooPending(c10::intrusive_ptr<c10d::Work> work, std::string what, int rank, double timeout)
      : work_(std::move(work)), what_(std::move(what)), rank_(rank), timeout_(timeout) {}

  void wait() override {
    if (!work_) return;
    auto work = std::move(work_);
    try {
      // A peer that died closes its sockets, which fails the operation at once; a peer that hangs
      // is caught by the timeout (Gloo's own, and this wait's, whichever comes first).
      work->wait(std::chrono::milliseconds(static_cast<int64_t>(timeout_ * 1000)));
    } catch (...) {
      throw PeerError("rank " + std::to_string(rank_) + ": " + what_ +
                      " failed: another rank died, hung or is unreachable (" +
                      describe(std::current_exception()) + "; distributed.timeout " +
                      std::to_string(static_cast<int64_t>(timeout_)) + " s)");
    }
  }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  std::string what_;
  int rank_;
  double timeout_;
};

class GlooCommunicator final : public Communicator {
 public:
  GlooCommunicator(const DistributedOptions& o) : options_(o) {
    const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(o.timeout_seconds * 1000));
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(o.master_port);
    store_options.isServer = o.rank == 0;
    store_options.numWorkers = static_cast<size_t>(o.world_size);
    store_options.waitWorkers = true;
    store_options.timeout = timeout;
    try {
      store_ = c10::make_intrusive<c10d::TCPStore>(o.master_addr, store_options);
      auto gloo = c10d::ProcessGroupGloo::Options::create();
      gloo->timeout = timeout;
      gloo->devices.push_back(gloo_device(o.master_addr));
      // One Gloo worker thread: collectives are issued in order from one training thread.
      gloo->threads = 1;
      group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(store_, o.rank, o.world_size, gloo);
    } catch (const c10::Error& e) {
      throw PeerError("rank " + std::to_string(o.rank) + ": cannot join the job at " +
                      o.master_addr + ":" + std::to_string(o.master_port) + " (world size " +
                      std::to_string(o.world_size) + ", distributed.timeout " +
                      std::to_string(static_cast<int64_t>(o.timeout_seconds)) +
                      " s): " + e.what_without_backtrace());
    }
  }

  int rank() const override { return options_.rank; }
  int world_size() const override { return options_.world_size; }
  double timeout_seconds() const override { return options_.timeout_seconds; }

  std::unique_ptr<PendingOp> all_reduce_sum_async(at::Tensor& tensor) override {
    std::vector<at::Tensor> tensors{tensor};
    return pending(start([&] { return group_->allreduce(tensors); }, "all-reduce"), "all-reduce");
  }

  void broadcast(at::Tensor& tensor, int root) override {
    std::vector<at::Tensor> tensors{tensor};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    pending(start([&] { return group_->broadcast(tensors, opts); }, "broadcast"), "broadcast")
        ->wait();
  }

  void send(const at::Tensor& tensor, int to, int tag) override {
    std::vector<at::Tensor> tensors{tensor.contiguous()};
    const std::string what = "send to rank " + std::to_string(to);
    pending(start([&] { return group_->send(tensors, to, tag); }, what), what)->wait();
  }

  std::unique_ptr<PendingOp> recv_async(at::Tensor& tensor, int from, int tag) override {
    std::vector<at::Tensor> tensors{tensor};
    const std::string what = "receive from rank " + std::to_string(from);
    return pending(start([&] { return group_->recv(tensors, from, tag); }, what), what);
  }

  void barrier() override {
    pending(start([&] { return group_->barrier(); }, "barrier"), "barrier")->wait();
  }

 private:
  static std::shared_ptr<gloo::transport::Device> gloo_device(const std::string& master) {
    // Gloo's own variable picks the network interface, as with torch.distributed.
    if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"))
      return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
    if (master == "127.0.0.1" || master == "localhost")
      return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
    return c10d::ProcessGroupGloo::createDefaultDevice();
  }

  template <typename Fn>
  c10::intrusive_ptr<c10d::Work> start(Fn fn, const std::string& what) {
    try {
      return fn();
    } catch (...) {
      throw PeerError("rank " + std::to_string(options_.rank) + ": " + what +
                      " could not start: " + describe(std::current_exception()));
    }
  }

  std::unique_ptr<PendingOp> pending(c10::intrusive_ptr<c10d::Work> work, const std::string& what) {
    return std::make_unique<GlooPending>(std::move(work), what, options_.rank,
                                         options_.timeout_seconds);
  }

  DistributedOptions options_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
};

}  // namespace

std::shared_ptr<Communicator> Communicator::connect(const DistributedOptions& options) {
  return std::make_shared<GlooCommunicator>(options);
}

std::string Communicator::broadcast_string(const std::string& text, int root) {
  at::Tensor length = torch::tensor({static_cast<int64_t>(text.size())}, torch::kLong);
  broadcast(length, root);
  at::Tensor bytes = torch::zeros({length.item<int64_t>()}, torch::kUInt8);
  if (rank() == root) std::memcpy(bytes.data_ptr(), text.data(), text.size());
  if (bytes.numel() > 0) broadcast(bytes, root);
  return std::string(static_cast<const char*>(bytes.data_ptr()), bytes.numel());
}

std::vector<int64_t> Communicator::all_gather(int64_t value) {
  // A sum of one-hot rows: every rank fills its own slot.
  at::Tensor slots = torch::zeros({world_size()}, torch::kLong);
  slots[rank()] = value;
  all_reduce_sum(slots);
  return std::vector<int64_t>(slots.data_ptr<int64_t>(), slots.data_ptr<int64_t>() + world_size());
}

int64_t Communicator::min(int64_t value) {
  const std::vector<int64_t> values = all_gather(value);
  return *std::min_element(values.begin(), values.end());
}

}  // namespace neuroflux
