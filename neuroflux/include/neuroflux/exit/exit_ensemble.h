// The exit ensemble (neuroflux.exit_ensemble): the chosen exit's head averaged with the next
// deeper exit's, as SEDONA (Pyeon et al., ICLR 2021) averages the last heads of a locally
// trained network (ResNet-152: 21.1% -> 20.2% top-1 error).
//
// What is averaged: the heads' softmax probabilities, not their logits. Each head is trained on
// its own, so their logits have unrelated scales (a shallow head is often the less sure one, but
// a head can also be confidently wrong with large logits); averaging logits lets whichever head
// has the larger scale decide, averaging probabilities gives each head one bounded vote. The
// output is the log of the averaged probabilities, so softmax(output) is the ensemble's
// probabilities, argmax(output) its class, and cross-entropy on it is the ensemble's loss, as
// for any single head's logits.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "neuroflux/exit/exit_selector.h"
#include "neuroflux/report/report.h"

namespace neuroflux {

/// log((softmax(a) + softmax(b)) / 2) over dimension 1, computed stably.
at::Tensor average_softmax_log(const at::Tensor& a_logits, const at::Tensor& b_logits);

/// Stands where an exit network's head stands ("head"), after units 0..K: its `exit_head` is
/// unit K's head; `next_unit` (unit K + 1) runs on the same features and `next_head` (its head,
/// or the network's classifier) on that unit's output; forward returns average_softmax_log of
/// the two heads' logits.
class EnsembleTailImpl : public torch::nn::Module {
 public:
  EnsembleTailImpl(torch::nn::Sequential head, torch::nn::Sequential unit,
                   torch::nn::Sequential deeper_head);
  at::Tensor forward(const at::Tensor& features);

  torch::nn::Sequential exit_head, next_unit, next_head;
};
TORCH_MODULE(EnsembleTail);

/// Accuracy of the ensemble of two heads from their per-sample log-probabilities (row-major
/// [samples, classes], as collected on the validation split) against `labels`.
double ensemble_accuracy(const std::vector<float>& a_log_probs,
                         const std::vector<float>& b_log_probs, const at::Tensor& labels);

/// Ensemble accuracies of every pair of neighbouring heads (i, i + 1) from their validation
/// log-probabilities (per unit; empty for a unit without them, whose pairs are nullopt).
std::vector<std::optional<double>> pair_accuracies(
    const std::vector<std::vector<float>>& head_log_probs, const at::Tensor& labels);

/// report.json's "exit_ensemble" (the exported pair {"units": [k, k + 1], "val_accuracy"}, or
/// null when one head won) and "pair_val_accuracy" (per pair, null where not measured).
void add_ensemble_fields(Report& report, const ExitChoice& exit,
                         const std::vector<std::optional<double>>& pair_val_accuracy);

}  // namespace neuroflux
