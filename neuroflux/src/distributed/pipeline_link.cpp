#include "neuroflux/distributed/pipeline_link.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>

#include <deque>

namespace neuroflux {

namespace {
constexpr int kTagLength = 11, kTagActivations = 12, kTagLabels = 13;
}  // namespace

PipelineLink::PipelineLink(Communicator& comm, int peer, std::vector<int64_t> shape,
                           int64_t depth)
    : comm_(comm), peer_(peer), shape_(std::move(shape)), depth_(depth) {}

void PipelineLink::send(const at::Tensor& x, const at::Tensor& y) {
  const int64_t len = x.size(0);
  at::Tensor length = at::full({1}, len, at::kLong);
  at::Tensor xs = at::zeros(shape_), ys = at::zeros({shape_[0]}, at::kLong);
  if (len > 0) {
    xs.narrow(0, 0, len).copy_(x);
    ys.narrow(0, 0, len).copy_(y);
  }
  comm_.send(length, peer_, kTagLength);
  comm_.send(xs, peer_, kTagActivations);
  comm_.send(ys, peer_, kTagLabels);
}

void PipelineLink::end_phase() {
  for (int64_t i = 0; i < depth_; ++i) send(at::zeros({0}), at::zeros({0}));
}

void PipelineLink::receive_phase(
    const std::function<void(const at::Tensor&, const at::Tensor&)>& fn) {
  std::deque<Slot> queue;
  for (int64_t i = 0; i < depth_; ++i) queue.push_back(post());
  bool ended = false;
  while (!queue.empty()) {
    Slot slot = std::move(queue.front());
    queue.pop_front();
    for (auto& op : slot.ops) op->wait();
    const int64_t len = slot.length.item<int64_t>();
    if (len == 0) {
      ended = true;  // the remaining posted receives are this phase's other end markers
      continue;
    }
    if (!ended) queue.push_back(post());
    fn(slot.x.narrow(0, 0, len), slot.y.narrow(0, 0, len));
  }
}

PipelineLink::Slot PipelineLink::post() {
  Slot s{at::zeros({1}, at::kLong), at::empty(shape_), at::empty({shape_[0]}, at::kLong), {}};
  s.ops.push_back(comm_.recv_async(s.length, peer_, kTagLength));
  s.ops.push_back(comm_.recv_async(s.x, peer_, kTagActivations));
  s.ops.push_back(comm_.recv_async(s.y, peer_, kTagLabels));
  return s;
}

}  // namespace neuroflux
