// ParameterwiseOptimizer: SGD or Adam with LibTorch 1.13's own arithmetic (torch::optim::SGD,
// torch::optim::Adam), applied one parameter at a time, the optimizer of every NeuroFlux run.
// Its sums are formed in place in one scratch tensor (the gradient itself when fused), so an
// update holds at most one weight-sized temporary where torch's SGD with Nesterov and weight
// decay holds two; the weights come out bitwise equal. It also carries the two memory-floor
// options (README "Optimizer state and fused updates"):
//
// - Host state (memory.optimizer_state = "host"): the momentum buffers, Adam's moments and step
//   counts live in host memory, outside the device budget. On a CPU run that is memory allocated
//   inside an UntrackedScope, and the update's temporaries are host memory too. For a parameter
//   on another device (CUDA) the gradient (and, with weight decay, the weight) is copied to the
//   host, the state is updated there, and the resulting direction is copied back and applied to
//   the weight on the device. The CUDA path is written device-generic but has only been compiled,
//   never run: this project's machines have no GPU.
// - Fused updates (train.fused_update): each parameter is updated as soon as its gradient is
//   complete during backward, by a post hook on its gradient accumulator (AccumulateGrad), and its
//   gradient is freed right after, so about one layer's gradient is alive instead of all of them
//   (LOMO, Lv et al. 2023; PyTorch's optimizer-in-backward). step() then updates only parameters
//   whose gradient arrived some other way (still defined), and frees those gradients too.
//
// The state entries are torch's own (SGDParamState, AdamParamState under the same keys), so
// save()/load() write and read the same archives as torch's optimizers: a checkpoint moves
// freely between torch's optimizers and this one.
#pragma once

#include <torch/optim/adam.h>
#include <torch/optim/optimizer.h>
#include <torch/optim/sgd.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace torch::autograd {
struct Node;
}  // namespace torch::autograd

namespace neuroflux {

struct ParameterwiseOptions {
  bool host_state = false;  ///< memory.optimizer_state == "host"
  bool fused = false;       ///< train.fused_update
};

class ParameterwiseOptimizer : public torch::optim::Optimizer {
 public:
  enum class Rule { kSgd, kAdam };

  ParameterwiseOptimizer(std::vector<at::Tensor> parameters, torch::optim::SGDOptions options,
                         ParameterwiseOptions how);
  ParameterwiseOptimizer(std::vector<at::Tensor> parameters, torch::optim::AdamOptions options,
                         ParameterwiseOptions how);
  /// Removes the hooks from the gradient accumulators: a backward after this updates nothing.
  ~ParameterwiseOptimizer() override;
  // The hooks point at this object.
  ParameterwiseOptimizer(const ParameterwiseOptimizer&) = delete;
  ParameterwiseOptimizer(ParameterwiseOptimizer&&) = delete;
  ParameterwiseOptimizer& operator=(const ParameterwiseOptimizer&) = delete;
  ParameterwiseOptimizer& operator=(ParameterwiseOptimizer&&) = delete;

  /// Updates every parameter whose gradient is defined (all of them unless fused). Fused: also
  /// re-attaches a hook where a parameter's gradient accumulator was replaced (set_data to
  /// another device), so the next backward updates it again.
  at::Tensor step(LossClosure closure = nullptr) override;

  void save(torch::serialize::OutputArchive& archive) const override;
  /// Also moves each loaded state tensor where this optimizer keeps state (the host, untracked,
  /// or the parameter's device).
  void load(torch::serialize::InputArchive& archive) override;

  /// One parameter's update from its .grad at the group's current options (so the rate set with
  /// set_learning_rate counts); fused, the gradient is freed afterwards. No gradient: nothing.
  void update(size_t group, const at::Tensor& parameter);

  Rule rule() const { return rule_; }
  bool fused() const { return how_.fused; }
  bool host_state() const { return how_.host_state; }
  /// Bytes of the state tensors, wherever they live.
  int64_t state_bytes() const;

 private:
  struct Hook {
    at::Tensor parameter;
    std::shared_ptr<torch::autograd::Node> accumulator;  ///< held: the tensor holds it weakly
    uintptr_t key = 0;
    size_t group = 0;
  };
  void attach_hooks();
  void refresh_hooks();
  void detach_hooks() noexcept;
  void sgd_update(const at::Tensor& p, const torch::optim::SGDOptions& o);
  void adam_update(const at::Tensor& p, const torch::optim::AdamOptions& o);

  Rule rule_;
  ParameterwiseOptions how_;
  std::vector<Hook> hooks_;
};

}  // namespace neuroflux
