#include "neuroflux/local/unit_step.h"

#include <torch/torch.h>

#include "neuroflux/distributed/grad_reducer.h"

namespace neuroflux {

UnitStepResult unit_step(torch::nn::Sequential& unit, torch::nn::Sequential& head,
                         torch::optim::Optimizer& optimizer, const at::Tensor& input,
                         const at::Tensor& labels, GradReducer* reducer) {
  optimizer.zero_grad();
  at::Tensor output = unit->forward(input.detach());
  const at::Tensor logits = head->forward(output);
  const at::Tensor loss = torch::cross_entropy_loss(logits, labels);
  if (reducer) reducer->arm();
  loss.backward();
  if (reducer) reducer->finish();
  optimizer.step();
  return {output.detach(), loss.detach(), logits.detach().argmax(1).eq(labels).sum()};
}

}  // namespace neuroflux
