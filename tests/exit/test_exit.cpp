#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cmath>
#include <optional>
#include <vector>

#include "neuroflux/exit/exit_ensemble.h"
#include "neuroflux/exit/exit_selector.h"
#include "neuroflux/exit/exported_model.h"
#include "neuroflux/local/local_model.h"
#include "neuroflux/models/model_zoo.h"

using namespace neuroflux;

TEST_CASE("local model exports units 0..k with head k", "[local][exit][unit]") {
  ModelConfig mc;
  mc.name = "simplecnn";
  mc.width = 0.25;
  auto chain = build_model(mc, {1, 16, 16}, 4);
  LocalModel model(chain, fixed_head_specs(chain->size(), 16));
  model->eval();
  const at::Tensor x = torch::randn({2, 1, 16, 16});
  for (int64_t k = 0; k < model->size(); ++k) {
    auto exported = exit_network(model, k);
    const at::Tensor expect = model->head(k)->forward(chain->forward_units(x, 0, k + 1));
    CHECK(torch::allclose(exported->forward(x), expect));
    int64_t params = 0;
    for (const auto& p : exported->parameters()) params += p.numel();
    CHECK(parameter_count(exit_network(model, k)) == params);
  }
  CHECK(parameter_count(exit_network(model, 0)) <
        parameter_count(exit_network(model, model->size() - 1)));
}

TEST_CASE("the exit is the shallowest head within tolerance of the best", "[exit][unit]") {
  const ExitChoice a = select_exit({0.80, 0.86, 0.897, 0.90, 0.899}, 0.005);
  CHECK(a.unit == 2);
  CHECK(a.best_unit == 3);
  CHECK(a.best_val_accuracy == 0.90);
  const ExitChoice b = select_exit({0.80, 0.86, 0.897, 0.90, 0.899}, 0.0);
  CHECK(b.unit == 3);
  const ExitChoice c = select_exit({0.7, 0.8, std::nullopt, std::nullopt}, 0.005);
  CHECK(c.unit == 1);
  CHECK_THROWS(select_exit({std::nullopt}, 0.01));
}

TEST_CASE("exit ensembles are candidates: shallowest within tolerance, then the more accurate",
          "[exit][unit]") {
  const std::vector<std::optional<double>> heads{0.80, 0.86, 0.88, 0.90};
  // Pair (1, 2) at 0.903 beats every head: the best; within 0.005 of it only (1, 2) and head 3,
  // and the pair runs one unit less deep.
  const ExitChoice a = select_exit(heads, {0.84, 0.903, 0.905}, 0.005);
  CHECK(a.unit == 1);
  CHECK(a.ensemble);
  CHECK(a.val_accuracy == 0.903);
  CHECK(a.best_unit == 2);
  CHECK(a.best_ensemble);
  CHECK(a.best_val_accuracy == 0.905);
  // Same depth as head 2 (pair (1, 2)): the more accurate wins; a tie keeps the single head.
  const ExitChoice b = select_exit({0.80, 0.86, 0.88, std::nullopt}, {std::nullopt, 0.89}, 0.01);
  CHECK(b.unit == 1);
  CHECK(b.ensemble);
  const ExitChoice c = select_exit({0.80, 0.86, 0.89, std::nullopt}, {std::nullopt, 0.89}, 0.0);
  CHECK(c.unit == 2);
  CHECK_FALSE(c.ensemble);
  // No pairs measured: the plain rule.
  const ExitChoice d = select_exit(heads, {}, 0.005);
  CHECK(d.unit == 3);
  CHECK_FALSE(d.ensemble);
}

TEST_CASE("the ensemble averages the two heads' probabilities", "[exit][unit]") {
  // Hand-computed: softmax([0, ln 3]) = [1/4, 3/4] and softmax([0, 0]) = [1/2, 1/2] average to
  // [3/8, 5/8]; softmax([ln 3, 0]) = [3/4, 1/4] with [1/2, 1/2] to [5/8, 3/8].
  const double ln3 = std::log(3.0);
  const at::Tensor a = torch::tensor({{0.0, ln3}, {ln3, 0.0}}, torch::kFloat);
  const at::Tensor b = torch::tensor({{0.0, 0.0}, {0.0, 0.0}}, torch::kFloat);
  const at::Tensor out = average_softmax_log(a, b);
  const at::Tensor want =
      torch::log(torch::tensor({{0.375, 0.625}, {0.625, 0.375}}, torch::kFloat));
  CHECK(torch::allclose(out, want, 1e-6, 1e-6));
  // Not the average of the logits: that would be [0, ln 3 / 2], softmax [0.366, 0.634].
  CHECK_FALSE(torch::allclose(torch::softmax(out, 1), torch::softmax((a + b) / 2, 1), 1e-3, 1e-3));
  // The pair's accuracy from stored log-probabilities: it predicts class 1, then class 0.
  const auto flat = [](const at::Tensor& t) {
    const at::Tensor lp = torch::log_softmax(t, 1).contiguous();
    return std::vector<float>(lp.data_ptr<float>(), lp.data_ptr<float>() + lp.numel());
  };
  CHECK(ensemble_accuracy(flat(a), flat(b), torch::tensor({1, 0})) == 1.0);
  CHECK(ensemble_accuracy(flat(a), flat(b), torch::tensor({0, 1})) == 0.0);
  const auto pairs = pair_accuracies({flat(a), flat(b), {}}, torch::tensor({1, 1}));
  REQUIRE(pairs.size() == 2);
  CHECK(*pairs[0] == 0.5);
  CHECK_FALSE(pairs[1].has_value());

  // The exported tail on a real model: unit k's head and unit k + 1's, averaged.
  ModelConfig mc;
  mc.name = "simplecnn";
  mc.width = 0.25;
  auto chain = build_model(mc, {1, 16, 16}, 4);
  LocalModel model(chain, fixed_head_specs(chain->size(), 16));
  model->eval();
  torch::NoGradGuard no_grad;
  const at::Tensor x = torch::randn({3, 1, 16, 16});
  for (int64_t k = 0; k + 1 < model->size(); ++k) {
    const at::Tensor features = chain->forward_units(x, 0, k + 1);
    const at::Tensor p = torch::softmax(model->head(k)->forward(features), 1);
    const at::Tensor q =
        torch::softmax(model->head(k + 1)->forward(chain->unit(k + 1)->forward(features)), 1);
    const at::Tensor got = ensemble_exit_network(model, k)->forward(x);
    CHECK(torch::allclose(got, torch::log((p + q) / 2), 1e-5, 1e-6));
    CHECK(parameter_count(ensemble_exit_network(model, k)) ==
          parameter_count(exit_network(model, k + 1)) +
              parameter_count(model->head(k)));
  }
}

TEST_CASE("progressive exit waits for patience blocks in a row without gain", "[exit][unit]") {
  // The 0.2-of-peak vgg11 run this guards against: block 1 fell short of block 0's noisy best
  // (0.8045 < 0.812) and, with patience 1, every deeper unit was skipped at 0.80.
  ProgressiveExit once(0.005, 1);
  CHECK_FALSE(once.after_block(-1.0, 0.812));  // the first block always gains
  CHECK(once.after_block(0.812, 0.812));

  ProgressiveExit twice(0.005, 2);
  CHECK_FALSE(twice.after_block(-1.0, 0.812));
  CHECK_FALSE(twice.after_block(0.812, 0.812));   // one block short: keep going
  CHECK(twice.blocks_without_gain() == 1);
  CHECK_FALSE(twice.after_block(0.812, 0.890));   // a gain resets the count
  CHECK(twice.blocks_without_gain() == 0);
  CHECK_FALSE(twice.after_block(0.890, 0.894));   // within tolerance: no gain
  CHECK(twice.after_block(0.894, 0.894));         // the second in a row stops

  ProgressiveExit resumed(0.005, 2, /*blocks_without_gain=*/1);  // as restored from a checkpoint
  CHECK(resumed.after_block(0.9, 0.9));
}

TEST_CASE("a block's heads are recorded and its gain measured over the units before it",
          "[exit][unit]") {
  std::vector<std::optional<double>> heads(5, std::nullopt);
  const BlockGain first = record_block_heads(heads, 0, {0.70, 0.81});
  CHECK(first.best_before < 0);  // no head before the first block
  CHECK(first.best_after == 0.81);
  const BlockGain second = record_block_heads(heads, 2, {0.79, 0.80});
  CHECK(second.best_before == 0.81);
  CHECK(second.best_after == 0.81);  // no deeper head beat unit 1
  CHECK(*heads[2] == 0.79);
  CHECK(*heads[3] == 0.80);
  CHECK(untrained_units(heads) == std::vector<int64_t>{4});
  CHECK_THROWS(record_block_heads(heads, 4, {0.9, 0.9}));  // past the last unit
}
