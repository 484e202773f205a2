#include "neuroflux/recompute/scheduled_chain.h"

#include <ATen/Context.h>
#include <ATen/core/ivalue.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/custom_class_detail.h>

#include <functional>
#include <mutex>
#include <optional>

namespace neuroflux {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor generator_state(const c10::Device& device) {
  at::Generator generator = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void set_generator_state(const c10::Device& device, const at::Tensor& state) {
  at::Generator generator = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

// The random-number state a segment's first forward saw, so its re-run draws the same dropout
// masks (torch.utils.checkpoint's preserve_rng_state): the CPU generator, and the device's.
struct RngState {
  at::Tensor cpu;
  std::optional<std::pair<c10::Device, at::Tensor>> device;

  static RngState capture(const c10::Device& on) {
    RngState s;
    s.cpu = generator_state(c10::Device(c10::kCPU));
    if (!on.is_cpu()) s.device = std::make_pair(on, generator_state(on));
    return s;
  }
  void restore() const {
    set_generator_state(c10::Device(c10::kCPU), cpu);
    if (device) set_generator_state(device->first, device->second);
  }
};

// Sets a saved state for its lifetime, then puts back the state the training had reached.
class RngFork {
 public:
  explicit RngFork(const RngState& saved)
      : now_(RngState::capture(saved.device ? saved.device->first : c10::Device(c10::kCPU))) {
    saved.restore();
  }
  ~RngFork() { now_.restore(); }
  RngFork(const RngFork&) = delete;
  RngFork& operator=(const RngFork&) = delete;

 private:
  RngState now_;
};

// Batch norm updated its running statistics in the segment's first forward; the re-run must not
// update them a second time, so they are put back after it.
class BufferRestore {
 public:
  explicit BufferRestore(const std::vector<at::Tensor>& buffers) {
    for (const at::Tensor& buffer : buffers) saved_.emplace_back(buffer, buffer.clone());
  }
  ~BufferRestore() {
    at::NoGradGuard no_grad;
    for (auto& [buffer, value] : saved_) buffer.copy_(value);
  }
  BufferRestore(const BufferRestore&) = delete;
  BufferRestore& operator=(const BufferRestore&) = delete;

 private:
  std::vector<std::pair<at::Tensor, at::Tensor>> saved_;
};

at::Tensor run_nodes(UnitChain& model, const std::vector<ScheduleNode>& nodes, at::Tensor x,
                     const std::shared_ptr<OffloadStore>& store, bool top);

// What a checkpointed segment needs in its backward: how to run it (first without recording,
// then again with recording, possibly under an inner schedule), its parameters and buffers.
struct SegmentState : torch::CustomClassHolder {
  std::function<at::Tensor(const at::Tensor&)> run;       // the first, unrecorded forward
  std::function<at::Tensor(const at::Tensor&)> rerun;     // the recorded re-run
  std::vector<at::Tensor> params, buffers;
  std::shared_ptr<OffloadStore> store;   // set when the input is offloaded
  RngState rng;
  bool input_requires_grad = false;
  int64_t slot = -1;   // offloaded input's slot in the store
};

class SegmentFunction : public torch::autograd::Function<SegmentFunction> {
 public:
  // Runs with autograd off (Function::apply sees to it): nothing of the segment is kept.
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x,
                               const c10::intrusive_ptr<SegmentState>& state,
                               at::TensorList params) {
    (void)params;   // inputs only so that the segment's weights receive gradients
    state->rng = RngState::capture(x.device());
    state->input_requires_grad = x.requires_grad();
    // An offloaded input is copied out while the segment runs forward, and is gone before the
    // next node starts: the schedule counts it alive during this segment only. (Copied after the
    // forward and not waited for, a copy thread the OS ran late kept it alive into the next
    // nodes, past the budget.)
    if (state->store) state->slot = state->store->offload(x);
    at::Tensor y = state->run(x);
    if (state->store) {
      state->store->wait_offloaded(state->slot);
    } else {
      ctx->save_for_backward({x});
    }
    ctx->saved_data["state"] = c10::IValue::make_capsule(state);
    return {y};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto* state = static_cast<SegmentState*>(ctx->saved_data["state"].toCapsule().get());
    const at::Tensor saved =
        state->store ? state->store->fetch(state->slot) : ctx->get_saved_variables()[0];
    const at::Tensor input = saved.detach().requires_grad_(state->input_requires_grad);
    // Batch norm's running statistics are put back only after the gradients are computed: its
    // backward node holds them and refuses to run once they are modified in place.
    BufferRestore keep_statistics(state->buffers);
    at::Tensor y;
    {
      RngFork same_randomness(state->rng);
      torch::AutoGradMode recording(true);
      y = state->rerun(input);
    }
    // A nested backward, as torch.utils.checkpoint does: each weight's gradient goes through
    // its own AccumulateGrad node the moment it is complete, as in a plain backward, so fused
    // updates (train.fused_update) apply and free it there. torch::autograd::grad would return
    // all of the segment's weight gradients at once, alive together until this function returns
    // them: on vgg11 at batch 2 that alone raised backprop's floor with checkpoint, host state
    // and fused updates from 4.1 to 5.8 MB.
    if (y.requires_grad()) {
      torch::autograd::backward({y}, {grad_outputs[0]}, /*retain_graph=*/false,
                                /*create_graph=*/false);
    }
    variable_list result(2 + state->params.size());  // weights: already accumulated
    if (state->input_requires_grad) result[0] = input.grad();
    return result;
  }
};

at::Tensor run_nodes(UnitChain& model, const std::vector<ScheduleNode>& nodes, at::Tensor x,
                     const std::shared_ptr<OffloadStore>& store, bool top) {
  int64_t previous_slot = -1;
  for (const ScheduleNode& node : nodes) {
    at::Tensor y;
    int64_t slot = -1;
    if (node.kind == ScheduleNode::Kind::Store) {
      y = run_stage(model, node.first, x);
    } else {
      auto state = c10::make_intrusive<SegmentState>();
      state->run = [model, first = node.first, last = node.last](const at::Tensor& in) mutable {
        at::Tensor out = in;
        for (int64_t stage = first; stage < last; ++stage) out = run_stage(model, stage, out);
        return out;
      };
      state->rerun = [model, inner = node.inner](const at::Tensor& in) mutable {
        return run_nodes(model, inner, in, nullptr, /*top=*/false);
      };
      state->params = model->unit_parameters(node.first, node.last, false);
      for (int64_t stage = node.first; stage < node.last; ++stage)
        for (const at::Tensor& b : model->unit(stage)->buffers()) state->buffers.push_back(b);
      if (node.offload_input) state->store = store;
      y = SegmentFunction::apply(x, state, at::TensorList(state->params))[0];
      slot = state->slot;
    }
    // The previous node's offloaded input comes back while this node runs backward: the hook
    // fires when this node's output gradient is ready, just before its backward starts.
    if (top && previous_slot >= 0 && y.requires_grad()) {
      std::shared_ptr<OffloadStore> target = store;
      const int64_t wanted = previous_slot;
      y.register_hook([target, wanted](const at::Tensor&) { target->prefetch(wanted); });
    }
    previous_slot = slot;
    x = std::move(y);
  }
  return x;
}

}  // namespace

at::Tensor checkpoint(torch::nn::Sequential module, const at::Tensor& x) {
  auto state = c10::make_intrusive<SegmentState>();
  state->run = [module](const at::Tensor& in) mutable { return module->forward(in); };
  state->rerun = state->run;
  state->params = module->parameters();
  state->buffers = module->buffers();
  return SegmentFunction::apply(x, state, at::TensorList(state->params))[0];
}

at::Tensor run_stage(UnitChain& model, int64_t stage, const at::Tensor& x) {
  return stage < model->size() ? model->unit(stage)->forward(x)
                               : model->classifier()->forward(x);
}

ScheduledChain::ScheduledChain(UnitChain model, CheckpointSchedule schedule,
                               std::shared_ptr<OffloadStore> store)
    : model_(std::move(model)), schedule_(std::move(schedule)), store_(std::move(store)) {
  TORCH_CHECK(!schedule_.nodes.empty() && schedule_.nodes.back().last == model_->size() + 1,
              "ScheduledChain: the schedule covers ", schedule_.nodes.empty() ? 0 : schedule_.nodes.back().last,
              " stages, the model has ", model_->size() + 1);
  bool offloads = false;
  for (const ScheduleNode& node : schedule_.nodes) offloads = offloads || node.offload_input;
  if (offloads)
    TORCH_CHECK(store_ != nullptr, "ScheduledChain: an offloading schedule needs an OffloadStore");
}

at::Tensor ScheduledChain::forward(const at::Tensor& x) {
  if (store_) store_->new_step();
  return run_nodes(model_, schedule_.nodes, x, store_, /*top=*/true);
}

OffloadStats ScheduledChain::offload_stats() const {
  return store_ ? store_->stats() : OffloadStats{};
}

}  // namespace neuroflux
