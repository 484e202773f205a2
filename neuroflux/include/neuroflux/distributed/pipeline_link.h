// Micro-batches between two neighbouring pipeline stages. Every message has the full micro-batch
// shape (a short batch is padded, its true length travels first), so the receiver can post its
// receives ahead: `depth` posted receives are the bounded queue, and Gloo completes a send only
// once its receive is posted, so a sender runs at most `depth` micro-batches ahead. A phase (an
// epoch, an evaluation) ends with `depth` empty messages, which consume exactly the receives
// still posted.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "neuroflux/distributed/communicator.h"

namespace neuroflux {

class PipelineLink {
 public:
  /// `shape` is a whole micro-batch's, batch dimension first.
  PipelineLink(Communicator& comm, int peer, std::vector<int64_t> shape, int64_t depth);

  /// Sends one micro-batch (at most shape[0] samples) and its labels.
  void send(const at::Tensor& x, const at::Tensor& y);
  /// Ends the phase for the receiver.
  void end_phase();
  /// Calls fn for every micro-batch of one phase, in order.
  void receive_phase(const std::function<void(const at::Tensor&, const at::Tensor&)>& fn);

 private:
  struct Slot {
    at::Tensor length, x, y;
    std::vector<std::unique_ptr<PendingOp>> ops;
  };
  Slot post();

  Communicator& comm_;
  int peer_;
  std::vector<int64_t> shape_;
  int64_t depth_;
};

}  // namespace neuroflux
