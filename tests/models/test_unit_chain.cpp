// UnitChain itself: chains from a user's Sequential, parameter ranges, save/load, bad use.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "neuroflux/util/errors.h"
#include "neuroflux/models/model_zoo.h"
#include "neuroflux/models/unit_chain.h"

#include <unistd.h>

#include <filesystem>
#include <string>
#include <unordered_set>
#include <vector>

using neuroflux::UnitChain;
namespace nn = torch::nn;

namespace {

nn::Sequential user_network() {
  // A Functional child too: units need not be parameterised layers.
  return nn::Sequential(nn::Conv2d(nn::Conv2dOptions(1, 8, 3).padding(1)), nn::ReLU(),
                        nn::MaxPool2d(nn::MaxPool2dOptions(2)),
                        nn::Conv2d(nn::Conv2dOptions(8, 16, 3)),
                        nn::Functional([](at::Tensor t) { return torch::relu(t); }),
                        nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions(1)), nn::Flatten(),
                        nn::Linear(16, 5));
}

// A path unique to this process and test, removed when the test ends.
struct TempFile {
  explicit TempFile(const std::string& stem)
      : path(std::filesystem::temp_directory_path() /
             (stem + "_" + std::to_string(::getpid()) + ".pt")) {}
  ~TempFile() { std::filesystem::remove(path); }
  std::filesystem::path path;
};

}  // namespace

TEST_CASE("chain_from_sequential makes each child a unit", "[models][unit]") {
  torch::manual_seed(0);
  nn::Sequential network = user_network();
  UnitChain chain = neuroflux::chain_from_sequential(network, {1, 12, 12}, 5);
  // The last child (the Linear) is the classifier.
  REQUIRE(chain->size() == 7);
  CHECK(chain->name() == "sequential");
  CHECK(chain->output_shape(0) == std::vector<int64_t>{8, 12, 12});
  CHECK(chain->output_shape(2) == std::vector<int64_t>{8, 6, 6});
  CHECK(chain->output_shape(3) == std::vector<int64_t>{16, 4, 4});
  CHECK(chain->output_shape(5) == std::vector<int64_t>{16, 1, 1});
  CHECK(chain->output_shape(6) == std::vector<int64_t>{16});
  CHECK(chain->classifier()->size() == 1);

  at::Tensor x = torch::randn({3, 1, 12, 12});
  CHECK(torch::equal(chain->forward(x), network->forward(x)));
  at::Tensor features = chain->forward_units(chain->forward_units(x, 0, 4), 4, 7);
  CHECK(torch::equal(features, chain->forward_units(x, 0, 7)));
  CHECK(torch::equal(chain->classifier()->forward(features), network->forward(x)));

  // The chain shares the user's modules: the same parameters, no copies.
  CHECK(chain->parameter_count() == neuroflux::count_parameters(*network));
  std::unordered_set<const void*> user_params;
  for (const auto& p : network->parameters()) user_params.insert(p.data_ptr());
  for (const auto& p : chain->parameters()) CHECK(user_params.count(p.data_ptr()) == 1);
  // Parameter names keep the child's name inside its unit.
  CHECK(chain->named_parameters().contains("unit0.0.weight"));
  CHECK(chain->named_parameters().contains("unit3.3.weight"));
  CHECK(chain->named_parameters().contains("classifier.7.weight"));
}

TEST_CASE("chain_from_sequential with a separate classifier", "[models][unit]") {
  torch::manual_seed(0);
  nn::Sequential features(nn::Conv2d(nn::Conv2dOptions(3, 4, 3).padding(1)), nn::ReLU(),
                          nn::Conv2d(nn::Conv2dOptions(4, 6, 3).stride(2).padding(1)));
  nn::Sequential head(nn::Flatten(), nn::Linear(6 * 4 * 4, 3));
  UnitChain chain = neuroflux::chain_from_sequential(features, {3, 8, 8}, 3, head);
  CHECK(chain->size() == 3);
  CHECK(chain->output_shape(2) == std::vector<int64_t>{6, 4, 4});
  at::Tensor x = torch::randn({2, 3, 8, 8});
  CHECK(torch::equal(chain->forward(x), head->forward(features->forward(x))));

  // unit_parameters picks exactly the units asked for.
  CHECK(chain->unit_parameters(0, 0, false).empty());
  CHECK(chain->unit_parameters(0, 1, false).size() == 2);
  CHECK(chain->unit_parameters(1, 2, false).empty());  // the ReLU
  CHECK(chain->unit_parameters(0, 3, false).size() == 4);
  CHECK(chain->unit_parameters(2, 3, true).size() == 4);
  CHECK(chain->unit_parameters(0, 3, true).size() == chain->parameters().size());
  CHECK_THROWS(chain->unit_parameters(2, 4, false));
  CHECK_THROWS(chain->forward_units(x, 2, 1));
  CHECK_THROWS(chain->output_shape(3));
}

TEST_CASE("chain_from_sequential rejects networks that do not fit", "[models][unit]") {
  // A one-child network has nothing left for units once its child becomes the classifier.
  CHECK_THROWS_AS(neuroflux::chain_from_sequential(nn::Sequential(nn::Flatten()), {1, 4, 4}, 16),
                  neuroflux::Error);
  // A child that cannot take the input names the unit and the shape.
  nn::Sequential wrong(nn::Conv2d(nn::Conv2dOptions(3, 4, 3)), nn::Flatten(), nn::Linear(10, 2));
  CHECK_THROWS_WITH(neuroflux::chain_from_sequential(wrong, {1, 8, 8}, 2),
                    Catch::Matchers::Contains("unit 0") &&
                        Catch::Matchers::Contains("[2, 1, 8, 8]"));
  // The classifier must give num_classes logits.
  nn::Sequential ok(nn::Conv2d(nn::Conv2dOptions(1, 4, 3)), nn::Flatten(), nn::Linear(144, 2));
  CHECK_THROWS_WITH(neuroflux::chain_from_sequential(ok, {1, 8, 8}, 3),
                    Catch::Matchers::Contains("[2, 2]"));
}

TEST_CASE("the dry run keeps the mode and the BN statistics", "[models][unit]") {
  torch::manual_seed(0);
  nn::Sequential network(nn::Conv2d(nn::Conv2dOptions(1, 4, 3)), nn::BatchNorm2d(4),
                         nn::Flatten(), nn::Linear(4 * 6 * 6, 2));
  network->train();
  UnitChain chain = neuroflux::chain_from_sequential(network, {1, 8, 8}, 2);
  CHECK(chain->is_training());
  auto* bn = chain->unit(1)->ptr(0)->as<nn::BatchNorm2d>();
  REQUIRE(bn != nullptr);
  CHECK(bn->is_training());
  CHECK(bn->num_batches_tracked.item<int64_t>() == 0);

  // A module the user put in eval mode stays there; the others keep training.
  bn->eval();
  UnitChain mixed = neuroflux::chain_from_sequential(network, {1, 8, 8}, 2);
  CHECK_FALSE(bn->is_training());
  CHECK(mixed->unit(0)->ptr(0)->is_training());
}

TEST_CASE("torch::save and torch::load round-trip a chain", "[models][unit]") {
  torch::manual_seed(0);
  neuroflux::ModelConfig config;
  config.name = "resnet18";
  config.width = 0.25;
  UnitChain chain = neuroflux::build_model(config, {3, 32, 32}, 10);
  // A few training steps' worth of forward passes move BN's running statistics away from their
  // initial values, so the buffers are part of what must survive the round trip.
  chain->train();
  {
    torch::NoGradGuard no_grad;
    for (int i = 0; i < 2; ++i) chain->forward(torch::randn({4, 3, 32, 32}));
  }
  TempFile file("neuroflux_unit_chain_roundtrip");
  torch::save(chain, file.path.string());

  torch::manual_seed(1);  // different initial weights
  UnitChain loaded = neuroflux::build_model(config, {3, 32, 32}, 10);
  chain->eval();
  loaded->eval();
  at::Tensor x = torch::randn({2, 3, 32, 32});
  torch::NoGradGuard no_grad;
  CHECK_FALSE(torch::equal(chain->forward(x), loaded->forward(x)));
  torch::load(loaded, file.path.string());
  CHECK(torch::equal(chain->forward(x), loaded->forward(x)));
  auto a = chain->named_buffers(), b = loaded->named_buffers();
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) CHECK(torch::equal(a[i].value(), b[i].value()));
}
