#include "neuroflux/models/sequential_stage.h"

#include <torch/torch.h>

namespace neuroflux {

SequentialStage as_stage(const torch::nn::Sequential& sequential) {
  SequentialStage stage;
  const auto names = sequential->named_children().keys();
  size_t i = 0;
  for (const auto& layer : *sequential) stage->push_back(names.at(i++), layer);
  return stage;
}

}  // namespace neuroflux
