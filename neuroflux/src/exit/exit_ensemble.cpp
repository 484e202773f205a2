#include "neuroflux/exit/exit_ensemble.h"

#include <torch/torch.h>

#include <cmath>

#include "neuroflux/memory/memory_meter.h"

namespace neuroflux {

at::Tensor average_softmax_log(const at::Tensor& a_logits, const at::Tensor& b_logits) {
  // log((p + q) / 2) = logsumexp(log p, log q) - log 2: no probability underflows to 0.
  const at::Tensor both =
      torch::stack({torch::log_softmax(a_logits, 1), torch::log_softmax(b_logits, 1)});
  return torch::logsumexp(both, 0) - std::log(2.0);
}

// The parts are registered, not copied: they are the trained network's own modules.
EnsembleTailImpl::EnsembleTailImpl(torch::nn::Sequential head, torch::nn::Sequential unit,
                                   torch::nn::Sequential deeper_head)
    : exit_head(register_module("exit_head", std::move(head))),
      next_unit(register_module("next_unit", std::move(unit))),
      next_head(register_module("next_head", std::move(deeper_head))) {}

at::Tensor EnsembleTailImpl::forward(const at::Tensor& features) {
  const at::Tensor first = exit_head->forward(features);
  const at::Tensor second = next_head->forward(next_unit->forward(features));
  return average_softmax_log(first, second);
}

double ensemble_accuracy(const std::vector<float>& a_log_probs,
                         const std::vector<float>& b_log_probs, const at::Tensor& labels) {
  const int64_t n = labels.size(0);
  TORCH_CHECK(n > 0 && a_log_probs.size() == b_log_probs.size() &&
                  static_cast<int64_t>(a_log_probs.size()) % n == 0,
              "ensemble_accuracy: ", a_log_probs.size(), " and ", b_log_probs.size(),
              " log-probabilities for ", n, " labels");
  // Host bookkeeping after training, not part of any device step.
  UntrackedScope untracked;
  const int64_t classes = static_cast<int64_t>(a_log_probs.size()) / n;
  const auto view = [&](const std::vector<float>& v) {
    return torch::from_blob(const_cast<float*>(v.data()), {n, classes}, torch::kFloat);
  };
  const at::Tensor predicted = average_softmax_log(view(a_log_probs), view(b_log_probs)).argmax(1);
  return predicted.eq(labels.to(torch::kCPU).to(torch::kLong)).sum().item<double>() /
         static_cast<double>(n);
}

std::vector<std::optional<double>> pair_accuracies(
    const std::vector<std::vector<float>>& head_log_probs, const at::Tensor& labels) {
  std::vector<std::optional<double>> pairs;
  for (size_t i = 0; i + 1 < head_log_probs.size(); ++i) {
    const auto& a = head_log_probs[i];
    const auto& b = head_log_probs[i + 1];
    pairs.push_back(a.empty() || b.empty() ? std::nullopt
                                           : std::optional(ensemble_accuracy(a, b, labels)));
  }
  return pairs;
}

void add_ensemble_fields(Report& report, const ExitChoice& exit,
                         const std::vector<std::optional<double>>& pair_val_accuracy) {
  nlohmann::json pairs = nlohmann::json::array();
  for (const auto& p : pair_val_accuracy)
    pairs.push_back(p ? nlohmann::json(*p) : nlohmann::json());
  report.extra["pair_val_accuracy"] = pairs;
  report.extra["exit_ensemble"] = exit.ensemble
                                      ? nlohmann::json{{"units", {exit.unit, exit.unit + 1}},
                                                       {"val_accuracy", exit.val_accuracy}}
                                      : nlohmann::json(nullptr);
}

}  // namespace neuroflux
