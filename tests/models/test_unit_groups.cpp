#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "neuroflux/local/local_model.h"
#include "neuroflux/local/unit_step.h"
#include "neuroflux/models/model_zoo.h"
#include "neuroflux/models/unit_groups.h"
#include "neuroflux/optim/optim.h"

using namespace neuroflux;

namespace {

UnitChain zoo_chain(const std::string& name, int64_t side) {
  ModelConfig mc;
  mc.name = name;
  mc.width = 0.25;
  return build_model(mc, {1, side, side}, 4);
}

std::vector<at::Tensor> grads_of(torch::nn::Module& module) {
  std::vector<at::Tensor> grads;
  for (const auto& p : module.parameters())
    grads.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
  return grads;
}

}  // namespace

TEST_CASE("modules take a fixed number of units, or one resolution stage each",
          "[models][unit]") {
  UnitChain resnet = zoo_chain("resnet18", 28);
  CHECK(module_sizes(2, *resnet) == std::vector<int64_t>{2, 2, 2, 2, 1});
  CHECK(module_sizes(1, *resnet) == std::vector<int64_t>(resnet->size(), 1));
  const std::vector<int64_t> stages = module_sizes(0, *resnet);
  int64_t first = 0;
  for (int64_t size : stages) {
    for (int64_t i = first; i < first + size; ++i) {
      CHECK(resnet->output_shape(i)[1] == resnet->output_shape(first)[1]);
      CHECK(resnet->output_shape(i)[2] == resnet->output_shape(first)[2]);
    }
    if (first > 0) CHECK(resnet->output_shape(first)[1] != resnet->output_shape(first - 1)[1]);
    first += size;
  }
  CHECK(first == resnet->size());
  CHECK(stages.size() < static_cast<size_t>(resnet->size()));

  UnitChain grouped = group_units(resnet, stages);
  CHECK(grouped->size() == static_cast<int64_t>(stages.size()));
  CHECK(grouped->parameter_count() == resnet->parameter_count());
  resnet->eval();
  const at::Tensor x = torch::randn({2, 1, 28, 28});
  CHECK(torch::allclose(grouped->forward(x), resnet->forward(x)));
}

TEST_CASE("a module's units learn by backprop inside it and nothing crosses modules",
          "[models][local][unit]") {
  torch::manual_seed(5);
  UnitChain chain = zoo_chain("simplecnn", 16);
  REQUIRE(chain->size() >= 3);
  UnitChain grouped = group_units(chain, {2, chain->size() - 2});
  LocalModel model(grouped, fixed_head_specs(grouped->size(), 16));
  TrainConfig still;  // a step that leaves the weights as they were, so gradients can be compared
  still.momentum = 0;
  still.weight_decay = 0;
  auto opt0 = make_optimizer(model->unit_and_head_parameters(0), still, MemoryConfig{}, 0.0);
  auto opt1 = make_optimizer(model->unit_and_head_parameters(1), still, MemoryConfig{}, 0.0);
  const at::Tensor x = torch::randn({6, 1, 16, 16});
  const at::Tensor y = torch::randint(0, 4, {6});

  const UnitStepResult first = unit_step(model->chain()->unit(0), model->head(0), *opt0, x, y);
  const auto module_grads = grads_of(*model->chain()->unit(0));
  const auto head_grads = grads_of(*model->head(0));

  // The reference: the module's two units and its head by hand, one loss, plain backprop.
  for (auto& p : model->parameters()) p.mutable_grad() = at::Tensor();
  const at::Tensor h = chain->unit(1)->forward(chain->unit(0)->forward(x));
  torch::cross_entropy_loss(model->head(0)->forward(h), y).backward();
  const auto expect_module = grads_of(*model->chain()->unit(0));
  const auto expect_head = grads_of(*model->head(0));
  REQUIRE(module_grads.size() == expect_module.size());
  for (size_t i = 0; i < module_grads.size(); ++i) {
    CHECK(torch::allclose(module_grads[i], expect_module[i], 1e-5, 1e-6));
    CHECK(module_grads[i].abs().sum().item<double>() > 0);  // both units learn from the head
  }
  for (size_t i = 0; i < head_grads.size(); ++i)
    CHECK(torch::allclose(head_grads[i], expect_head[i], 1e-5, 1e-6));

  // The next module's step leaves the first module's gradients as they were.
  unit_step(model->chain()->unit(1), model->head(1), *opt1, first.output, y);
  const auto after = grads_of(*model->chain()->unit(0));
  for (size_t i = 0; i < after.size(); ++i) CHECK(torch::equal(after[i], expect_module[i]));
}
