// A torch::nn::Sequential that can itself be an element of a Sequential. LibTorch's Sequential
// has a templated forward, which AnyModule cannot hold; this subclass (as torchvision's mnasnet
// does) gives it a plain Tensor -> Tensor forward. as_stage() wraps an existing unit without
// copying: the stage holds the same layer objects, so training either trains both.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/modules/container/sequential.h>

namespace neuroflux {

class SequentialStageImpl : public torch::nn::SequentialImpl {
 public:
  using torch::nn::SequentialImpl::SequentialImpl;
  at::Tensor forward(at::Tensor x) { return torch::nn::SequentialImpl::forward(std::move(x)); }
};
TORCH_MODULE(SequentialStage);

/// The layers of `sequential`, shared, in a stage (children keep their names "0", "1", ...).
SequentialStage as_stage(const torch::nn::Sequential& sequential);

}  // namespace neuroflux
