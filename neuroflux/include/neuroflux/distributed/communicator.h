// The ranks of a distributed run and the collectives the trainers use, on PyTorch's c10d
// (ProcessGroupGloo on CPU, rendezvous through a TCPStore). c10d's headers stay in the .cpp:
// what includes this sees tensors and plain values only.
#pragma once

#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "neuroflux/util/errors.h"

namespace neuroflux {

/// Where this process sits in a job: torchrun's variables, or --rank/--world-size/--master.
struct DistributedOptions {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;        ///< ranks on this machine (intra-op threads are shared)
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  double timeout_seconds = 120;    ///< a collective, send or recv that takes longer fails
};

/// A peer rank died, hung past the timeout, or could not be reached.
class PeerError : public Error {
 public:
  explicit PeerError(const std::string& message) : Error(message, ExitCode::kPeerFailure) {}
};

/// An operation started without waiting; wait() throws PeerError when it failed or timed out.
class PendingOp {
 public:
  virtual ~PendingOp() = default;
  virtual void wait() = 0;
};

class Communicator {
 public:
  /// Joins the job: rank 0 hosts the TCPStore, every rank waits for all world_size ranks (at
  /// most the timeout) and builds the Gloo process group.
  static std::shared_ptr<Communicator> connect(const DistributedOptions& options);
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual double timeout_seconds() const = 0;

  /// Element-wise sum over the ranks, in place, started now.
  virtual std::unique_ptr<PendingOp> all_reduce_sum_async(at::Tensor& tensor) = 0;
  /// Element-wise sum over the ranks, in place (CPU tensors).
  void all_reduce_sum(at::Tensor& tensor) { all_reduce_sum_async(tensor)->wait(); }
  /// `tensor` takes root's value on every rank.
  virtual void broadcast(at::Tensor& tensor, int root) = 0;
  /// Point to point; `tag` keeps streams apart.
  virtual void send(const at::Tensor& tensor, int to, int tag) = 0;
  virtual std::unique_ptr<PendingOp> recv_async(at::Tensor& tensor, int from, int tag) = 0;
  virtual void barrier() = 0;

  // Built on the above.
  std::string broadcast_string(const std::string& text, int root);
  std::vector<int64_t> all_gather(int64_t value);
  int64_t min(int64_t value);
};

}  // namespace neuroflux
