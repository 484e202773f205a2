// model.row_centric: the config key (validation with JSON paths, round trip), the zoo's refusal
// of models it cannot run, vgg / resnet training with it to the same losses and gradients as
// without, and stripes = "auto" fitting the bands into the memory meter's limit.
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include "config/config_test_util.h"
#include <nlohmann/json.hpp>

#include "neuroflux/config/config.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/models/model_zoo.h"

using neuroflux::Config;
using neuroflux::ConfigError;
using Catch::Matchers::Contains;
using nlohmann::json;

namespace {

// Three SGD steps of `config` on a fixed batch; the losses, then every parameter gradient of
// the last step.
std::pair<std::vector<double>, std::vector<at::Tensor>> train_steps(
    const neuroflux::ModelConfig& config, const at::Tensor& x, const at::Tensor& y) {
  torch::manual_seed(11);
  neuroflux::UnitChain model = neuroflux::build_model(config, {3, x.size(2), x.size(3)}, 10);
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9));
  std::vector<double> losses;
  for (int step = 0; step < 3; ++step) {
    sgd.zero_grad();
    const at::Tensor loss = torch::nn::functional::cross_entropy(model->forward(x), y);
    loss.backward();
    losses.push_back(loss.item<double>());
    sgd.step();
  }
  std::vector<at::Tensor> grads;
  for (const auto& p : model->parameters()) grads.push_back(p.grad().clone());
  return {losses, grads};
}

}  // namespace

TEST_CASE("model.row_centric is read, validated with JSON paths and written back",
          "[models][unit]") {
  json j = {{"model", {{"row_centric", {{"stripes", 6}, {"scheme", "two_phase"}}}}}};
  Config c = Config::from_json(j);
  CHECK(c.model.row_centric.enabled);
  CHECK(c.model.row_centric.stripes == 6);
  CHECK(c.model.row_centric.scheme == "two_phase");
  CHECK(c.to_json()["model"]["row_centric"] == json({{"stripes", 6}, {"scheme", "two_phase"}}));
  CHECK(Config::from_json(c.to_json()).model.row_centric.stripes == 6);

  CHECK_FALSE(Config::from_json(json::object()).model.row_centric.enabled);
  CHECK(Config::from_json(json::object()).to_json()["model"]["row_centric"].is_null());
  CHECK_FALSE(Config::from_json({{"model", {{"row_centric", nullptr}}}}).model.row_centric.enabled);
  // Present but empty: on, with the defaults.
  c = Config::from_json({{"model", {{"row_centric", json::object()}}}});
  CHECK(c.model.row_centric.enabled);
  CHECK(c.model.row_centric.stripes == 8);
  CHECK(c.model.row_centric.scheme == "overlap");

  c = Config::from_json({{"model", {{"row_centric", {{"stripes", "auto"}}}}},
                         {"memory", {{"budget", "64MiB"}}}});
  CHECK(c.model.row_centric.stripes == 0);
  CHECK(c.to_json()["model"]["row_centric"]["stripes"] == "auto");

  CHECK_THAT(error_of({{"model", {{"row_centric", {{"stripes", "auto"}}}}}}),
             Contains("/model/row_centric/stripes") && Contains("/memory/budget"));
  CHECK_THAT(error_of({{"model", {{"row_centric", {{"stripes", 0}}}}}}),
             Contains("/model/row_centric/stripes: expected a positive integer or \"auto\""));
  CHECK_THAT(error_of({{"model", {{"row_centric", {{"scheme", "halves"}}}}}}),
             Contains("/model/row_centric/scheme: expected one of overlap, two_phase"));
  CHECK_THAT(error_of({{"model", {{"row_centric", {{"stripe", 4}}}}}}),
             Contains("/model/row_centric/stripe"));
  CHECK_THAT(error_of({{"model", {{"row_centric", 4}}}}),
             Contains("/model/row_centric: expected an object"));
}

TEST_CASE("the zoo refuses row_centric where it cannot run it, naming the key",
          "[models][unit]") {
  neuroflux::ModelConfig config;
  config.name = "vgg11";
  config.row_centric.enabled = true;
  config.batch_norm = true;
  CHECK_THROWS_WITH(neuroflux::build_model(config, {3, 16, 16}, 10),
                    Contains("/model/row_centric") && Contains("/model/batch_norm"));
  config.batch_norm = false;
  config.activations = "bitmap";
  CHECK_THROWS_WITH(neuroflux::build_model(config, {3, 16, 16}, 10),
                    Contains("/model/row_centric") && Contains("/model/activations"));
  config.activations = "dense";
  config.name = "mobilenetv2";
  CHECK_THROWS_WITH(neuroflux::build_model(config, {3, 16, 16}, 10),
                    Contains("/model/row_centric") && Contains("mobilenetv2"));
}

TEST_CASE("vgg and resnet with row_centric train to the losses and gradients of plain backprop",
          "[models][unit]") {
  torch::manual_seed(3);
  const at::Tensor x = torch::randn({4, 3, 20, 20});
  const at::Tensor y = torch::randint(0, 10, {4}, torch::kLong);
  for (const char* name : {"vgg11", "resnet18"}) {
    neuroflux::ModelConfig config;
    config.name = name;
    config.batch_norm = false;
    config.width = 0.125;
    const auto [plain_losses, plain_grads] = train_steps(config, x, y);
    for (const char* scheme : {"overlap", "two_phase"}) {
      INFO(name << ", " << scheme);
      config.row_centric.enabled = true;
      config.row_centric.stripes = 3;
      config.row_centric.scheme = scheme;
      const auto [losses, grads] = train_steps(config, x, y);
      for (size_t i = 0; i < losses.size(); ++i) {
        CHECK(losses[i] == Approx(plain_losses[i]).epsilon(1e-5));
      }
      REQUIRE(grads.size() == plain_grads.size());
      for (size_t i = 0; i < grads.size(); ++i) {
        INFO("parameter " << i);
        CHECK(torch::allclose(grads[i], plain_grads[i], 1e-3, 1e-5));
      }
    }
  }
}

TEST_CASE("row_centric with stripes = auto takes its budget from the memory meter's limit",
          "[models][unit]") {
  neuroflux::MemoryMeter& meter = neuroflux::MemoryMeter::cpu();
  torch::manual_seed(4);
  const at::Tensor x = torch::randn({2, 3, 20, 20});
  for (const char* name : {"vgg11", "resnet18"}) {
    INFO(name);
    neuroflux::ModelConfig config;
    config.name = name;
    config.batch_norm = false;
    config.width = 0.125;
    torch::manual_seed(11);
    const at::Tensor plain = neuroflux::build_model(config, {3, 20, 20}, 10)->forward(x);
    config.row_centric.enabled = true;
    config.row_centric.stripes = 0;
    neuroflux::UnitChain model{nullptr};
    {
      // Under the budget from the start: building runs the model once, resnet's blocks already
      // row-centric.
      neuroflux::MemoryLimitGuard budget(meter, meter.current() + (256 << 20));
      torch::manual_seed(11);
      model = neuroflux::build_model(config, {3, 20, 20}, 10);
      CHECK(torch::allclose(model->forward(x), plain, 1e-4, 1e-5));
    }
    neuroflux::MemoryLimitGuard no_budget(meter, std::nullopt);
    CHECK_THROWS_WITH(model->forward(x),
                      Contains("needs a memory budget") && Contains("memory.budget"));
  }
}
