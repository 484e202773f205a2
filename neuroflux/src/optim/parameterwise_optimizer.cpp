#include "neuroflux/optim/parameterwise_optimizer.h"

#include <c10/util/string_utils.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/optim/serialize.h>
#include <torch/serialize/archive.h>
#include <torch/torch.h>

#include <cmath>
#include <optional>

#include "neuroflux/memory/memory_meter.h"

namespace neuroflux {

namespace {

using torch::optim::AdamOptions;
using torch::optim::AdamParamState;
using torch::optim::SGDOptions;
using torch::optim::SGDParamState;

// torch's optimizers key a parameter's state by its TensorImpl's address; so does this one, so
// the archives are interchangeable.
std::string optimizer_state_key(const at::Tensor& p) {
  return c10::guts::to_string(p.unsafeGetTensorImpl());
}

/// Runs on the AccumulateGrad node of one parameter, after the node has stored the parameter's
/// complete gradient in .grad (the engine calls post hooks after the node's apply).
class FusedUpdateHook final : public torch::autograd::FunctionPostHook {
 public:
  FusedUpdateHook(ParameterwiseOptimizer* owner, size_t group, at::Tensor parameter)
      : owner_(owner), group_(group), parameter_(std::move(parameter)) {}

  torch::autograd::variable_list operator()(
      const torch::autograd::variable_list& outputs,
      const torch::autograd::variable_list& /*inputs*/) override {
    owner_->update(group_, parameter_);
    return outputs;
  }

 private:
  ParameterwiseOptimizer* owner_;  ///< the hook is removed before the optimizer goes
  size_t group_;
  at::Tensor parameter_;
};

}  // namespace

ParameterwiseOptimizer::ParameterwiseOptimizer(std::vector<at::Tensor> parameters,
                                               SGDOptions options, ParameterwiseOptions how)
    : torch::optim::Optimizer(std::move(parameters), std::make_unique<SGDOptions>(options)),
      rule_(Rule::kSgd),
      how_(how) {
  // torch::optim::SGD's own checks.
  TORCH_CHECK(options.lr() >= 0, "Invalid learning rate: ", options.lr());
  TORCH_CHECK(options.momentum() >= 0, "Invalid momentum value: ", options.momentum());
  TORCH_CHECK(options.weight_decay() >= 0, "Invalid weight_decay value: ",
              options.weight_decay());
  TORCH_CHECK(!options.nesterov() || (options.momentum() > 0 && options.dampening() == 0),
              "Nesterov momentum requires a momentum and zero dampening");
  if (how_.fused) attach_hooks();
}

ParameterwiseOptimizer::ParameterwiseOptimizer(std::vector<at::Tensor> parameters,
                                               AdamOptions options, ParameterwiseOptions how)
    : torch::optim::Optimizer(std::move(parameters), std::make_unique<AdamOptions>(options)),
      rule_(Rule::kAdam),
      how_(how) {
  // torch::optim::Adam's own checks; amsgrad is not implemented here.
  TORCH_CHECK(options.lr() >= 0, "Invalid learning rate: ", options.lr());
  TORCH_CHECK(options.eps() >= 0, "Invalid epsilon value: ", options.eps());
  const auto betas = options.betas();
  TORCH_CHECK(0 <= std::get<0>(betas) && std::get<0>(betas) < 1.0,
              "Invalid beta parameter at index 0: ", std::get<0>(betas));
  TORCH_CHECK(0 <= std::get<1>(betas) && std::get<1>(betas) < 1.0,
              "Invalid beta parameter at index 1: ", std::get<1>(betas));
  TORCH_CHECK(options.weight_decay() >= 0, "Invalid weight_decay value: ",
              options.weight_decay());
  TORCH_CHECK(!options.amsgrad(), "ParameterwiseOptimizer: amsgrad is not supported");
  if (how_.fused) attach_hooks();
}

ParameterwiseOptimizer::~ParameterwiseOptimizer() { detach_hooks(); }

void ParameterwiseOptimizer::attach_hooks() {
  for (size_t g = 0; g < param_groups_.size(); ++g) {
    for (const at::Tensor& p : param_groups_[g].params()) {
      // Only leaves that take a gradient have an accumulator; others never get a .grad from
      // backward (step() still updates one that got a gradient some other way).
      if (!p.requires_grad() || !p.is_leaf()) continue;
      Hook hook;
      hook.parameter = p;
      hook.group = g;
      hook.accumulator = torch::autograd::impl::grad_accumulator(p);
      if (!hook.accumulator) continue;
      hook.key = hook.accumulator->add_post_hook(std::make_unique<FusedUpdateHook>(this, g, p));
      hooks_.push_back(std::move(hook));
    }
  }
}

void ParameterwiseOptimizer::refresh_hooks() {
  for (Hook& hook : hooks_) {
    // set_data() to another device or dtype drops the tensor's accumulator; the next backward
    // makes a new one that would not call us.
    if (torch::autograd::impl::try_get_grad_accumulator(hook.parameter) == hook.accumulator)
      continue;
    hook.accumulator->del_post_hook(hook.key);
    hook.accumulator = torch::autograd::impl::grad_accumulator(hook.parameter);
    hook.key = hook.accumulator->add_post_hook(
        std::make_unique<FusedUpdateHook>(this, hook.group, hook.parameter));
  }
}

void ParameterwiseOptimizer::detach_hooks() noexcept {
  for (Hook& hook : hooks_)
    if (hook.accumulator) hook.accumulator->del_post_hook(hook.key);
  hooks_.clear();
}

at::Tensor ParameterwiseOptimizer::step(LossClosure closure) {
  at::Tensor loss;
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (size_t g = 0; g < param_groups_.size(); ++g)
    for (const at::Tensor& p : param_groups_[g].params()) update(g, p);
  if (how_.fused) refresh_hooks();
  return loss;
}

void ParameterwiseOptimizer::update(size_t group, const at::Tensor& parameter) {
  if (!parameter.grad().defined()) return;
  torch::NoGradGuard no_grad;
  TORCH_CHECK(!parameter.grad().is_sparse(), "ParameterwiseOptimizer: sparse gradients");
  torch::optim::OptimizerOptions& options = param_groups_.at(group).options();
  if (rule_ == Rule::kSgd) {
    sgd_update(parameter, static_cast<const SGDOptions&>(options));
  } else {
    adam_update(parameter, static_cast<const AdamOptions&>(options));
  }
  // Fused: the gradient has served; nothing else reads it (config refuses what would).
  if (how_.fused) parameter.mutable_grad().reset();
}

// torch::optim::SGD::step (LibTorch 1.13) for one parameter, with the same arithmetic in the same
// order, so the weights come out bitwise equal: d_p = grad (+ weight_decay * p); the first
// momentum buffer is a copy of d_p, later ones buf = momentum * buf + (1 - dampening) * d_p;
// Nesterov d_p += momentum * buf, else d_p = buf; p -= lr * d_p.
//
// torch's step writes each of those sums to a new tensor: with weight decay and Nesterov, two
// weight-sized temporaries at once, which is what a unit's step peaks on when its weights outweigh
// its activations. Here d_p is one scratch tensor updated in place (an in-place add runs the same
// kernel as the out-of-place one). Fused, the scratch is the gradient itself, which is freed right
// after, so the update allocates nothing on the device; otherwise the gradient stays as backward
// left it, as with torch's optimizer.
void ParameterwiseOptimizer::sgd_update(const at::Tensor& p, const SGDOptions& o) {
  const bool to_host = how_.host_state && !p.is_cpu();
  std::optional<UntrackedScope> host;  // the state and the update's temporaries
  if (how_.host_state) host.emplace();
  const bool needs_scratch = o.weight_decay() != 0 || (o.momentum() != 0 && o.nesterov());
  at::Tensor d_p = p.grad();
  if (to_host) {
    d_p = d_p.to(at::kCPU);  // already a private copy
  } else if (needs_scratch && !how_.fused) {
    d_p = d_p.clone();
  }
  if (o.weight_decay() != 0) {
    const at::Tensor weight = to_host ? p.detach().to(at::kCPU) : p.detach();
    d_p.add_(weight, o.weight_decay());
  }
  if (o.momentum() != 0) {
    at::Tensor buf;
    const std::string key = optimizer_state_key(p);
    auto found = state_.find(key);
    if (found == state_.end()) {
      buf = torch::clone(d_p).detach();
      auto state = std::make_unique<SGDParamState>();
      state->momentum_buffer(buf);
      state_[key] = std::move(state);
    } else {
      buf = static_cast<SGDParamState&>(*found->second).momentum_buffer();
      buf.mul_(o.momentum()).add_(d_p, 1 - o.dampening());
    }
    if (o.nesterov()) {
      d_p.add_(buf, o.momentum());
    } else {
      d_p = buf;
    }
  }
  if (to_host) d_p = d_p.to(p.device());
  p.detach().add_(d_p, -1 * o.lr());
}

// torch::optim::Adam::step (LibTorch 1.13, amsgrad off) for one parameter: step += 1; grad +=
// weight_decay * p; exp_avg = beta1 * exp_avg + (1 - beta1) * grad; exp_avg_sq = beta2 *
// exp_avg_sq + (1 - beta2) * grad^2; denom = sqrt(exp_avg_sq) / sqrt(1 - beta2^step) + eps;
// p -= lr / (1 - beta1^step) * exp_avg / denom.
void ParameterwiseOptimizer::adam_update(const at::Tensor& p, const AdamOptions& o) {
  const bool to_host = how_.host_state && !p.is_cpu();
  std::optional<UntrackedScope> host;
  if (how_.host_state) host.emplace();
  // As in sgd_update: weight decay is added in place, to the gradient itself when fused (it is
  // freed right after), else to a copy. Where the gradient is such a scratch of ours, denom
  // reuses its memory below, once the moments hold it.
  const bool grad_is_scratch = to_host || how_.fused || o.weight_decay() != 0;
  at::Tensor grad = p.grad();
  if (to_host) {
    grad = grad.to(at::kCPU);
  } else if (grad_is_scratch && !how_.fused) {
    grad = grad.clone();
  }
  const std::string key = optimizer_state_key(p);
  auto found = state_.find(key);
  if (found == state_.end()) {
    auto state = std::make_unique<AdamParamState>();
    state->step(0);
    const auto where = to_host ? p.options().device(at::kCPU) : p.options();
    state->exp_avg(torch::zeros_like(p, where, at::MemoryFormat::Preserve));
    state->exp_avg_sq(torch::zeros_like(p, where, at::MemoryFormat::Preserve));
    found = state_.emplace(key, std::move(state)).first;
  }
  auto& state = static_cast<AdamParamState&>(*found->second);
  at::Tensor& exp_avg = state.exp_avg();
  at::Tensor& exp_avg_sq = state.exp_avg_sq();
  state.step(state.step() + 1);
  const double beta1 = std::get<0>(o.betas());
  const double beta2 = std::get<1>(o.betas());
  const double bias_correction1 = 1 - std::pow(beta1, state.step());
  const double bias_correction2 = 1 - std::pow(beta2, state.step());
  if (o.weight_decay() != 0) {
    const at::Tensor weight = to_host ? p.detach().to(at::kCPU) : p.detach();
    grad.add_(weight, o.weight_decay());
  }
  exp_avg.mul_(beta1).add_(grad, 1 - beta1);
  exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
  at::Tensor denom = grad_is_scratch ? at::sqrt_out(grad, exp_avg_sq) : exp_avg_sq.sqrt();
  denom.div_(std::sqrt(bias_correction2)).add_(o.eps());
  const double step_size = o.lr() / bias_correction1;
  if (to_host) {
    p.detach().addcdiv_(exp_avg.to(p.device()), denom.to(p.device()), -step_size);
  } else {
    p.detach().addcdiv_(exp_avg, denom, -step_size);
  }
}

int64_t ParameterwiseOptimizer::state_bytes() const {
  int64_t bytes = 0;
  auto add = [&bytes](const at::Tensor& t) {
    if (t.defined()) bytes += static_cast<int64_t>(t.nbytes());
  };
  for (const auto& [key, entry] : state_) {
    if (rule_ == Rule::kSgd) {
      add(static_cast<const SGDParamState&>(*entry).momentum_buffer());
    } else {
      const auto& s = static_cast<const AdamParamState&>(*entry);
      add(s.exp_avg());
      add(s.exp_avg_sq());
      add(s.max_exp_avg_sq());
    }
  }
  return bytes;
}

void ParameterwiseOptimizer::save(torch::serialize::OutputArchive& archive) const {
  if (rule_ == Rule::kSgd) {
    torch::optim::serialize<SGDParamState, SGDOptions>(archive, *this);
  } else {
    torch::optim::serialize<AdamParamState, AdamOptions>(archive, *this);
  }
}

void ParameterwiseOptimizer::load(torch::serialize::InputArchive& archive) {
  if (rule_ == Rule::kSgd) {
    torch::optim::serialize<SGDParamState, SGDOptions>(archive, *this);
  } else {
    torch::optim::serialize<AdamParamState, AdamOptions>(archive, *this);
  }
  // The archive's tensors were read wherever the caller loaded it: put each state where this
  // optimizer keeps it. Host state is always copied, so what the archive allocated (counted or
  // not) is released with the archive.
  auto place = [this](const at::Tensor& t, const at::Tensor& p) -> at::Tensor {
    if (!t.defined()) return t;
    if (how_.host_state) {
      UntrackedScope host;
      return t.to(at::TensorOptions(at::kCPU), /*non_blocking=*/false, /*copy=*/true);
    }
    return t.to(p.device());
  };
  for (const auto& group : param_groups_) {
    for (const at::Tensor& p : group.params()) {
      auto found = state_.find(optimizer_state_key(p));
      if (found == state_.end()) continue;
      if (rule_ == Rule::kSgd) {
        auto& s = static_cast<SGDParamState&>(*found->second);
        s.momentum_buffer(place(s.momentum_buffer(), p));
      } else {
        auto& s = static_cast<AdamParamState&>(*found->second);
        s.exp_avg(place(s.exp_avg(), p));
        s.exp_avg_sq(place(s.exp_avg_sq(), p));
        s.max_exp_avg_sq(place(s.max_exp_avg_sq(), p));
      }
    }
  }
}

}  // namespace neuroflux
