#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "neuroflux/util/errors.h"
#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/models/model_zoo.h"

using namespace neuroflux;

namespace {

UnitChain build(const std::string& name, const std::string& activations) {
  torch::manual_seed(3);
  ModelConfig mc;
  mc.name = name;
  mc.width = 0.25;
  mc.activations = activations;
  return build_model(mc, {1, 28, 28}, 10);
}

}  // namespace

TEST_CASE("bitmap activations give the dense network's loss and gradients bit for bit",
          "[models][ops][unit]") {
  for (const char* name : {"vgg11", "simplecnn"}) {
    INFO(name);
    UnitChain dense = build(name, "dense");
    UnitChain packed = build(name, "bitmap");
    const auto dp = dense->named_parameters();
    const auto pp = packed->named_parameters();
    REQUIRE(dp.size() == pp.size());  // same names: checkpoints move between the two
    for (const auto& item : dp) CHECK(torch::equal(item.value(), pp[item.key()]));

    const at::Tensor x = torch::randn({16, 1, 28, 28});
    const at::Tensor y = torch::randint(0, 10, {16});
    const at::Tensor ld = torch::cross_entropy_loss(dense->forward(x), y);
    const at::Tensor lp = torch::cross_entropy_loss(packed->forward(x), y);
    CHECK(torch::equal(ld, lp));
    ld.backward();
    lp.backward();
    for (const auto& item : dp) {
      INFO(item.key());
      CHECK(torch::equal(item.value().grad(), pp[item.key()].grad()));
    }
  }
}

TEST_CASE("bitmap activations keep less for the backward pass", "[models][ops][unit]") {
  MemoryMeter& meter = MemoryMeter::cpu();
  auto saved_bytes = [&](UnitChain chain) {
    const at::Tensor x = torch::randn({32, 1, 28, 28});
    const int64_t before = meter.current();
    at::Tensor out = chain->forward(x);
    return meter.current() - before;  // what the graph keeps alive for backward
  };
  const int64_t dense = saved_bytes(build("vgg11", "dense"));
  const int64_t packed = saved_bytes(build("vgg11", "bitmap"));
  CHECK(packed < dense * 0.85);
}

TEST_CASE("bitmap activations are refused for residual blocks, naming the key",
          "[models][unit]") {
  try {
    build("resnet18", "bitmap");
    FAIL("expected a ConfigError");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()).rfind("/model/activations:", 0) == 0);
  }
}
