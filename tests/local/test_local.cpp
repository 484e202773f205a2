#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "neuroflux/local/aux_head.h"
#include "neuroflux/local/local_model.h"
#include "neuroflux/local/unit_step.h"
#include "neuroflux/models/model_zoo.h"
#include "neuroflux/models/unit_groups.h"
#include "neuroflux/optim/optim.h"

using namespace neuroflux;

TEST_CASE("aux heads have the documented shape and cost", "[local][unit]") {
  const std::vector<int64_t> shape{32, 28, 28};
  auto head = make_aux_head(shape, {2, 48, false}, 10);
  const at::Tensor y = head->forward(torch::randn({3, 32, 28, 28}));
  CHECK(y.sizes() == at::IntArrayRef({3, 10}));
  // pool 2 (ceil): 14x14; bytes = 4 * (32 + 3 * 48) * 196
  CHECK(aux_head_activation_bytes(shape, {2, 48, false}) == 4.0 * (32 + 144) * 196);
  CHECK(aux_head_activation_bytes({8, 7, 7}, {2, 16, false}) == 4.0 * (8 + 48) * 16);
}

TEST_CASE("deep heads pool to a few pixels, then 1x1 convs and a small MLP", "[local][unit]") {
  const int64_t f = 16, classes = 10;
  const AuxHeadSpec spec{1, f, false, true, "deep"};
  auto head = make_aux_head({8, 14, 14}, spec, classes);
  const at::Tensor out = head->forward(torch::randn({3, 8, 14, 14}));
  CHECK(out.sizes() == torch::IntArrayRef({3, classes}));
  int64_t params = 0;
  for (const auto& p : head->parameters()) params += p.numel();
  // conv 8->F and F->F without bias, two batch norms, Linear(16F -> F), Linear(F -> classes).
  CHECK(params == 8 * f + f * f + 2 * 2 * f + (16 * f * f + f) + (f * classes + classes));
  CHECK(aux_head_activation_bytes({8, 14, 14}, spec) == 4.0 * ((8 + 6 * f) * 16 + 2 * f));
  // A 2x2 map keeps its 2x2: the head never pools to one pixel on purpose.
  CHECK(aux_head_activation_bytes({8, 2, 2}, spec) == 4.0 * ((8 + 6 * f) * 4 + 2 * f));
  CHECK(make_aux_head({8, 2, 2}, spec, classes)->forward(torch::randn({2, 8, 2, 2})).size(1) ==
        classes);
  CHECK(AuxHeadSpec::from_json(spec.to_json()) == spec);
  CHECK(AuxHeadSpec::from_json(AuxHeadSpec{2, 8, false}.to_json()).family == "conv");
}

TEST_CASE("copies heads: fresh copies of the next units, fewer with depth", "[local][unit]") {
  for (const std::string name : {"resnet18", "mobilenetv2", "vgg11"}) {
    INFO(name);
    ModelConfig mc;
    mc.name = name;
    mc.width = 0.125;
    UnitChain chain = build_model(mc, {3, 16, 16}, 5);
    const int64_t n = chain->size();
    // No cap: unit i copies every unit after it (depth n - 1 - i), 1 at unit n - 2.
    const std::vector<AuxHeadSpec> all = copies_head_specs(*chain, 0);
    REQUIRE(static_cast<int64_t>(all.size()) == n);
    CHECK(all[0].depth == n - 1);
    CHECK(all[n - 2].depth == 1);
    CHECK(all.back().classifier);
    // Capped at 3: round(3 (n - 1 - i) / (n - 1)), from 3 at the first unit to 0 or 1.
    const std::vector<AuxHeadSpec> specs = copies_head_specs(*chain, 3);
    for (int64_t i = 0; i + 1 < n; ++i) {
      const auto want = std::llround(3.0 * static_cast<double>(n - 1 - i) / (n - 1));
      CHECK(specs[i].depth == std::min<int64_t>(want, n - 1 - i));
      CHECK(AuxHeadSpec::from_json(specs[i].to_json()) == specs[i]);
    }
    LocalModel model(chain, specs);
    for (int64_t i = 0; i + 1 < n; ++i) {
      auto& head = model->head(i);
      // The copies' parameters have the next units' shapes but are their own tensors.
      std::vector<at::Tensor> copied;
      for (int64_t d = 0; d < specs[i].depth; ++d)
        for (const auto& p : head[d]->parameters()) copied.push_back(p);
      std::vector<at::Tensor> originals;
      for (int64_t d = 0; d < specs[i].depth; ++d)
        for (const auto& p : chain->unit(i + 1 + d)->parameters()) originals.push_back(p);
      REQUIRE(copied.size() == originals.size());
      for (size_t k = 0; k < copied.size(); ++k) {
        CHECK(copied[k].sizes() == originals[k].sizes());
        CHECK(copied[k].data_ptr() != originals[k].data_ptr());
      }
      // The copy of a conv is initialised afresh, not the unit's twin.
      for (size_t k = 0; k < copied.size(); ++k)
        if (copied[k].dim() == 4 && copied[k].numel() > 8)
          CHECK_FALSE(torch::equal(copied[k], originals[k]));
      const at::Tensor features = chain->forward_units(torch::randn({2, 3, 16, 16}), 0, i + 1);
      CHECK(head->forward(features).sizes() == at::IntArrayRef({2, 5}));
    }
  }
  // Depth 0 is a plain pool + linear head.
  auto plain = make_aux_head({8, 4, 4}, AuxHeadSpec{1, 1, false, true, "copies"}, 3);
  CHECK(plain->size() == 3);
  CHECK(plain->forward(torch::randn({2, 8, 4, 4})).sizes() == at::IntArrayRef({2, 3}));
}

TEST_CASE("copies heads count built units in grouped modules", "[local][unit]") {
  ModelConfig mc;
  mc.name = "resnet18";
  mc.width = 0.125;
  UnitChain built = build_model(mc, {3, 16, 16}, 5);
  UnitChain grouped = group_units(built, module_sizes(kStageModules, *built));
  REQUIRE(grouped->size() < built->size());
  const auto following = following_units(*grouped, 0);
  CHECK(static_cast<int64_t>(following.size()) == built->size() - grouped->module_sizes()[0]);
  const std::vector<AuxHeadSpec> specs = copies_head_specs(*grouped, 0);
  CHECK(specs[0].depth == static_cast<int64_t>(following.size()));
  LocalModel model(grouped, specs);
  const at::Tensor x = torch::randn({2, 3, 16, 16});
  CHECK(model->head(0)->forward(grouped->forward_units(x, 0, 1)).sizes() ==
        at::IntArrayRef({2, 5}));
}

TEST_CASE("the adaptive rule respects both fractions and pools only where needed",
          "[local][unit]") {
  // Cheap head timing model: proportional to F * pooled area.
  auto seconds = [](const std::vector<int64_t>& s) {
    return [s](const AuxHeadSpec& spec) {
      const double hw = std::ceil(double(s[1]) / spec.pool) * std::ceil(double(s[2]) / spec.pool);
      return 1e-9 * spec.width * hw * s[0];
    };
  };
  SECTION("a large map is pooled to keep the head small") {
    UnitCost unit{{64, 32, 32}, 4.0 * 64 * 32 * 32 * 3, 2e-9 * 64 * 64 * 32 * 32};
    const AuxHeadSpec spec = choose_adaptive_head(unit, 0.25, 0.2, seconds(unit.output_shape));
    CHECK(spec.pool > 1);
    CHECK(spec.width >= 16);
    CHECK(spec.width <= 256);
    CHECK(aux_head_activation_bytes(unit.output_shape, spec) <=
          0.25 * unit.activation_bytes_per_sample);
    CHECK(seconds(unit.output_shape)(spec) <= 0.2 * unit.seconds_per_sample * 1.0001);
  }
  SECTION("a small map with ample budget gets a full-resolution head, capped at 256") {
    UnitCost unit{{32, 4, 4}, 1e9, 1.0};
    const AuxHeadSpec spec = choose_adaptive_head(unit, 0.25, 0.2, seconds(unit.output_shape));
    CHECK(spec.pool == 1);
    CHECK(spec.width == 256);
  }
  SECTION("when nothing fits, the coarsest pool with the floor width") {
    UnitCost unit{{512, 8, 8}, 10.0, 1e-12};
    const AuxHeadSpec spec = choose_adaptive_head(unit, 0.25, 0.2, seconds(unit.output_shape));
    CHECK(spec.width == 16);
    CHECK(spec.pool >= 8);
  }
}

TEST_CASE("a unit step sends no gradient across units", "[local][unit]") {
  ModelConfig mc;
  mc.name = "simplecnn";
  mc.width = 0.25;
  auto chain = build_model(mc, {1, 16, 16}, 4);
  LocalModel model(chain, fixed_head_specs(chain->size(), 16));
  TrainConfig tc;
  auto opt0 = make_optimizer(model->unit_and_head_parameters(0), tc, MemoryConfig{}, 0.1);
  auto opt1 = make_optimizer(model->unit_and_head_parameters(1), tc, MemoryConfig{}, 0.1);
  const at::Tensor x = torch::randn({8, 1, 16, 16});
  const at::Tensor y = torch::randint(0, 4, {8});
  const auto r0 = unit_step(model->chain()->unit(0), model->head(0), *opt0, x, y);
  std::vector<at::Tensor> before;
  for (const auto& p : model->chain()->unit(0)->parameters()) before.push_back(p.detach().clone());
  for (auto& p : model->chain()->unit(0)->parameters()) p.mutable_grad() = at::Tensor();
  unit_step(model->chain()->unit(1), model->head(1), *opt1, r0.output, y);
  // Unit 1's step left unit 0 without a gradient and with the same weights.
  size_t k = 0;
  for (const auto& p : model->chain()->unit(0)->parameters()) {
    CHECK_FALSE(p.grad().defined());
    CHECK(torch::equal(p.detach(), before[k++]));
  }
  CHECK_FALSE(r0.output.requires_grad());
}

TEST_CASE("heads follow the model's batch norm setting and keep it in their spec", "[local][unit]") {
  const auto with = make_aux_head({8, 6, 6}, {1, 4, false, true}, 3);
  const auto without = make_aux_head({8, 6, 6}, {1, 4, false, false}, 3);
  auto has_batch_norm = [](const torch::nn::Sequential& head) {
    for (const auto& m : head->modules(false))
      if (m->as<torch::nn::BatchNorm2d>() != nullptr) return true;
    return false;
  };
  CHECK(has_batch_norm(with));
  CHECK_FALSE(has_batch_norm(without));
  const AuxHeadSpec spec{2, 16, false, false};
  CHECK(AuxHeadSpec::from_json(spec.to_json()) == spec);
  CHECK(AuxHeadSpec::from_json({{"pool", 1}, {"width", 8}}).batch_norm);   // older plans
  CHECK_FALSE(fixed_head_specs(3, 8, false)[0].batch_norm);
}

TEST_CASE("a unit trained recomputed, row-centric or as im2col products takes plain's step",
          "[local][unit]") {
  // A plain conv stack (every mode applies: plain, recompute, row_centric, im2col) and one with
  // batch norm (row-centric does not).
  for (const bool batch_norm : {false, true}) {
    INFO("batch norm " << batch_norm);
    torch::manual_seed(4);
    torch::nn::Sequential unit(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 8, 3).padding(1)));
    if (batch_norm) unit->push_back(torch::nn::BatchNorm2d(8));
    unit->push_back(torch::nn::ReLU());
    unit->push_back(torch::nn::MaxPool2d(2));
    auto head = make_aux_head({8, 6, 6}, {1, 8, false, batch_norm}, 5);
    const at::Tensor x = torch::randn({6, 3, 12, 12});
    const at::Tensor y = torch::randint(0, 5, {6});
    const auto modes = unit_modes_for(unit);
    CHECK(modes.size() == (batch_norm ? 3u : 4u));

    std::vector<at::Tensor> initial;
    for (const auto& p : unit->parameters()) initial.push_back(p.detach().clone());
    std::vector<at::Tensor> reference;
    double reference_loss = 0;
    for (const UnitMode mode : modes) {
      INFO("mode " << to_string(mode));
      CHECK(unit_mode_from_string(to_string(mode)) == mode);
      {
        torch::NoGradGuard no_grad;
        auto params = unit->parameters();
        for (size_t i = 0; i < params.size(); ++i) params[i].copy_(initial[i]);
      }
      std::vector<at::Tensor> all = unit->parameters();
      for (const auto& p : head->parameters()) all.push_back(p);
      torch::optim::SGD optimizer(all, torch::optim::SGDOptions(0.0));   // lr 0: grads only
      const UnitStepResult r = unit_step(unit, head, optimizer, x, y, nullptr, mode);
      std::vector<at::Tensor> grads;
      for (const auto& p : unit->parameters()) grads.push_back(p.grad().clone());
      if (mode == UnitMode::kPlain) {
        reference = grads;
        reference_loss = r.loss.item<double>();
        continue;
      }
      CHECK(r.loss.item<double>() == Approx(reference_loss).epsilon(1e-6));
      for (size_t i = 0; i < grads.size(); ++i)
        CHECK(torch::allclose(grads[i], reference[i], 1e-4, 1e-6));
    }
  }
  CHECK_THROWS(unit_mode_from_string("swap"));
}
