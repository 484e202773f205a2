#include "neuroflux/train/evaluate.h"

#include <torch/torch.h>

namespace neuroflux {

std::vector<EvalResult> evaluate_heads(
    const std::function<std::vector<at::Tensor>(const at::Tensor&)>& heads,
    const data::ImageSet& set, int64_t batch_size, const c10::Device& device) {
  torch::NoGradGuard no_grad;
  std::vector<double> loss_sum, correct;
  const int64_t n = set.size();
  for (int64_t start = 0; start < n; start += batch_size) {
    const int64_t len = std::min(batch_size, n - start);
    // narrow() views the untracked host storage; to(device) copies only off the CPU.
    const at::Tensor x = set.images.narrow(0, start, len).to(device);
    const at::Tensor y = set.labels.narrow(0, start, len).to(device);
    const std::vector<at::Tensor> outputs = heads(x);
    if (loss_sum.empty()) {
      loss_sum.assign(outputs.size(), 0.0);
      correct.assign(outputs.size(), 0.0);
    }
    for (size_t h = 0; h < outputs.size(); ++h) {
      loss_sum[h] += torch::cross_entropy_loss(outputs[h], y, {}, at::Reduction::Sum)
                         .item<double>();
      correct[h] += outputs[h].argmax(1).eq(y).sum().item<double>();
    }
  }
  std::vector<EvalResult> results(loss_sum.size());
  for (size_t h = 0; h < results.size(); ++h)
    results[h] = {loss_sum[h] / std::max<int64_t>(1, n), correct[h] / std::max<int64_t>(1, n), n};
  return results;
}

EvalResult evaluate(const std::function<at::Tensor(const at::Tensor&)>& logits,
                    const data::ImageSet& set, int64_t batch_size, const c10::Device& device) {
  auto results = evaluate_heads(
      [&](const at::Tensor& x) { return std::vector<at::Tensor>{logits(x)}; }, set, batch_size,
      device);
  return results.empty() ? EvalResult{} : results.front();
}

}  // namespace neuroflux
