#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "neuroflux/config/config.h"
#include "neuroflux/local/local_loss.h"
#include "neuroflux/local/local_model.h"
#include "neuroflux/local/unit_step.h"
#include "neuroflux/models/model_zoo.h"
#include "neuroflux/optim/optim.h"

using namespace neuroflux;

TEST_CASE("similarity matching equals a hand-computed value", "[local][unit]") {
  // Three samples, two features: after centring each row is (+-d, -+d), so every cosine is +-1.
  const at::Tensor features = torch::tensor({{1.0f, 3.0f}, {2.0f, 0.0f}, {0.0f, 5.0f}});
  const at::Tensor labels = torch::tensor({0, 1, 0}, torch::kLong);
  // Rows centred: (-1, 1), (1, -1), (-2.5, 2.5): cosines [[1,-1,1],[-1,1,-1],[1,-1,1]].
  // Label similarity [[1,0,1],[0,1,0],[1,0,1]]: the four -1 entries miss by 1, the rest match.
  const double expected = 4.0 / 9.0;
  CHECK(similarity_matching_loss(features, labels).item<double>() == Approx(expected));
  // A map is pooled to at most 4x4 first: a 2x2 map is used as it is.
  const at::Tensor map = features.reshape({3, 2, 1, 1}).expand({3, 2, 2, 2}).contiguous();
  CHECK(similarity_matching_loss(map, labels).item<double>() == Approx(expected));
}

TEST_CASE("reconstruction is the decoder's squared error over the target's variance",
          "[local][unit]") {
  torch::manual_seed(3);
  auto decoder = make_decoder({4, 2, 2}, {1, 4, 4});
  const at::Tensor output = torch::randn({2, 4, 2, 2});
  const at::Tensor input = torch::randn({2, 1, 4, 4}) * 3.0;
  const at::Tensor decoded = decoder->forward(output);
  CHECK(decoded.sizes() == at::IntArrayRef({2, 1, 4, 4}));
  const double mse = (decoded - input).pow(2).mean().item<double>();
  const double variance = input.var().item<double>();
  CHECK(reconstruction_loss(decoder, output, input).item<double>() ==
        Approx(mse / (variance + 1e-6)));
  // The same resolution needs no upsampling.
  CHECK(make_decoder({4, 4, 4}, {2, 4, 4})->size() == 2);
}

TEST_CASE("the terms fade with depth and the last unit learns from cross-entropy alone",
          "[local][unit]") {
  CHECK(depth_faded_weight(2.0, 0, 5) == 2.0);
  CHECK(depth_faded_weight(2.0, 2, 5) == 1.0);
  CHECK(depth_faded_weight(2.0, 4, 5) == 0.0);
  CHECK(depth_faded_weight(2.0, 0, 1) == 0.0);

  ModelConfig mc;
  mc.name = "simplecnn";
  mc.width = 0.25;
  auto chain = build_model(mc, {1, 16, 16}, 4);
  const int64_t n = chain->size();
  LocalModel model(chain, fixed_head_specs(n, 8), LocalLossSpec{0.5, 1.0});
  CHECK(model->loss_terms(0).sim_weight == 0.5);
  CHECK(model->loss_terms(0).decoder);
  CHECK(!model->loss_terms(n - 1).decoder);
  CHECK(model->loss_terms(n - 1).recon_weight == 0.0);
  // The decoder is stepped with its unit: its parameters are in the unit's optimizer list.
  const size_t with_decoder = model->unit_and_head_parameters(0).size();
  LocalModel plain(chain, fixed_head_specs(n, 8));
  // The conv's weight, batch norm's weight and bias.
  CHECK(with_decoder == plain->unit_and_head_parameters(0).size() + 3);
}

TEST_CASE("a unit step with both terms lowers them, with gradients only in its unit",
          "[local][unit]") {
  torch::manual_seed(5);
  ModelConfig mc;
  mc.name = "simplecnn";
  mc.width = 0.25;
  auto chain = build_model(mc, {1, 16, 16}, 4);
  const auto [sim, rec] = GENERATE(std::pair{1.0, 0.0}, std::pair{0.0, 1.0}, std::pair{1.0, 1.0});
  CAPTURE(sim, rec);
  LocalModel model(chain, fixed_head_specs(chain->size(), 8), LocalLossSpec{sim, rec});
  TrainConfig tc;
  tc.lr = 0.2;  // a NeuroFlux block's rate at batch 512
  auto optimizer = make_optimizer(model->unit_and_head_parameters(0), tc, MemoryConfig{}, tc.lr);
  const at::Tensor x = torch::randn({16, 1, 16, 16});
  const at::Tensor y = torch::randint(0, 4, {16}, torch::kLong);
  UnitLossTerms& terms = model->loss_terms(0);
  auto recon = [&] {
    torch::NoGradGuard no_grad;
    return reconstruction_loss(terms.decoder, model->chain()->unit(0)->forward(x), x).item<double>();
  };
  auto similarity = [&] {
    torch::NoGradGuard no_grad;
    return similarity_matching_loss(model->chain()->unit(0)->forward(x), y).item<double>();
  };
  const double before = terms.decoder ? recon() : 0.0;
  const double similarity_before = similarity();
  for (int step = 0; step < 30; ++step) {
    const UnitStepResult r = unit_step(model->chain()->unit(0), model->head(0), *optimizer, x, y,
                                       nullptr, UnitMode::kPlain, &terms);
    REQUIRE(std::isfinite(r.loss.item<double>()));
  }
  if (sim > 0) CHECK(similarity() < similarity_before);
  if (terms.decoder) {
    CHECK(recon() < 0.9 * before);  // noise keeps 3/4 of its variance above half resolution
    for (const auto& p : terms.decoder->parameters()) CHECK(p.grad().defined());
  }
  for (const auto& p : model->chain()->unit(1)->parameters()) CHECK(!p.grad().defined());
}

TEST_CASE("local_loss picks the terms the config names", "[local][unit]") {
  Config config;
  CHECK(!local_loss_spec(config).any());
  config.neuroflux.local_loss = "ce+recon";
  config.neuroflux.recon_weight = 3.0;
  CHECK(local_loss_spec(config).recon_weight == 3.0);
  CHECK(local_loss_spec(config).sim_weight == 0.0);
  config.neuroflux.local_loss = "ce+sim+recon";
  CHECK(local_loss_spec(config).sim_weight == config.neuroflux.sim_weight);
}
