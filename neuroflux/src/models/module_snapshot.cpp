#include "neuroflux/models/module_snapshot.h"

#include <torch/torch.h>

#include "neuroflux/memory/memory_meter.h"

namespace neuroflux {

ModuleSnapshot::ModuleSnapshot(const torch::nn::Module& module) {
  UntrackedScope untracked;
  torch::NoGradGuard no_grad;
  for (const auto& p : module.parameters()) parameters_.push_back(p.detach().to(at::TensorOptions(at::kCPU), false, true));
  for (const auto& b : module.buffers()) buffers_.push_back(b.detach().to(at::TensorOptions(at::kCPU), false, true));
}

void ModuleSnapshot::restore(torch::nn::Module& module) const {
  torch::NoGradGuard no_grad;
  auto parameters = module.parameters();
  auto buffers = module.buffers();
  TORCH_INTERNAL_ASSERT(parameters.size() == parameters_.size() && buffers.size() == buffers_.size());
  for (size_t i = 0; i < parameters.size(); ++i) {
    parameters[i].copy_(parameters_[i]);
    parameters[i].mutable_grad() = at::Tensor();
  }
  for (size_t i = 0; i < buffers.size(); ++i) buffers[i].copy_(buffers_[i]);
}

}  // namespace neuroflux
