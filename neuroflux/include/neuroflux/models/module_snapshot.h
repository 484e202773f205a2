// A copy of a module's parameters and buffers kept in untracked host memory, so trial steps (the
// batch-size search, the profiler) can run on the real module and leave it exactly as it was.
#pragma once

#include <torch/nn/module.h>

#include <vector>

namespace neuroflux {

class ModuleSnapshot {
 public:
  explicit ModuleSnapshot(const torch::nn::Module& module);
  /// Copies the saved values back and drops every parameter's gradient.
  void restore(torch::nn::Module& module) const;

 private:
  std::vector<at::Tensor> parameters_, buffers_;
};

}  // namespace neuroflux
