#include <catch2/catch.hpp>
#include <torch/torch.h>

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
