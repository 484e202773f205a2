// Accuracy and loss of one or several classifier heads over a data set, in eval mode and without
// autograd.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <functional>
#include <vector>

#include "neuroflux/data/image_set.h"

namespace neuroflux {

struct EvalResult {
  double loss = 0;
  double accuracy = 0;
  int64_t samples = 0;
};

/// `heads(x)` returns one logits tensor per head for a batch `x`; the result has one entry per
/// head. The caller puts modules in eval mode.
std::vector<EvalResult> evaluate_heads(
    const std::function<std::vector<at::Tensor>(const at::Tensor&)>& heads,
    const data::ImageSet& set, int64_t batch_size, const c10::Device& device);

EvalResult evaluate(const std::function<at::Tensor(const at::Tensor&)>& logits,
                    const data::ImageSet& set, int64_t batch_size, const c10::Device& device);

}  // namespace neuroflux
