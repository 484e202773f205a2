#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "neuroflux/local/im2col_unit.h"
#include "neuroflux/local/unit_step.h"
#include "neuroflux/models/model_zoo.h"

using namespace neuroflux;
namespace nn = torch::nn;

namespace {

/// Output and every gradient (parameters, then input) of a sum-of-squares loss over `unit`.
std::vector<at::Tensor> output_and_gradients(nn::Sequential& unit, const at::Tensor& input,
                                             bool im2col) {
  for (auto& p : unit->parameters()) p.mutable_grad() = at::Tensor();
  const at::Tensor x = input.detach().requires_grad_(true);
  const at::Tensor y = im2col ? im2col_forward(unit, x) : unit->forward(x);
  (y * y).sum().backward();
  std::vector<at::Tensor> all{y.detach()};
  for (auto& p : unit->parameters()) all.push_back(p.grad().clone());
  all.push_back(x.grad());
  return all;
}

}  // namespace

TEST_CASE("a unit's convs as im2col products give ATen's outputs and gradients",
          "[local][unit]") {
  torch::manual_seed(5);
  // A vgg unit with batch norm and a pool, and convs with stride, no bias, dilation and 'same'.
  nn::Sequential unit = GENERATE(
      nn::Sequential(nn::Conv2d(nn::Conv2dOptions(8, 16, 3).padding(1)), nn::BatchNorm2d(16),
                     nn::ReLU(), nn::MaxPool2d(2)),
      nn::Sequential(nn::Conv2d(nn::Conv2dOptions(8, 12, 3).stride(2).bias(false)), nn::ReLU(),
                     nn::Conv2d(nn::Conv2dOptions(12, 6, 3).dilation(2).padding(torch::kSame))),
      nn::Sequential(nn::Conv2d(nn::Conv2dOptions(8, 4, {1, 3}).padding({0, 1})),
                     nn::AvgPool2d(2)));
  REQUIRE(runs_im2col(unit));
  const at::Tensor input = torch::randn({3, 8, 9, 9});
  const auto plain = output_and_gradients(unit, input, false);
  const auto product = output_and_gradients(unit, input, true);
  REQUIRE(plain.size() == product.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    INFO("tensor " << i << " (0: output, then parameters' gradients, last: the input's)");
    CHECK(plain[i].sizes() == product[i].sizes());
    CHECK(torch::allclose(plain[i], product[i], 1e-4, 1e-4));
  }
  // Through the unit step's own switch too.
  CHECK(torch::allclose(unit_forward(unit, input, UnitMode::kIm2col), plain[0], 1e-4, 1e-4));
}

TEST_CASE("im2col is offered for flat conv units only", "[local][unit]") {
  ModelConfig vgg;
  vgg.name = "vgg11";
  vgg.width = 0.125;
  UnitChain vgg_units = build_model(vgg, {1, 28, 28}, 10);
  for (int64_t i = 0; i + 1 < vgg_units->size(); ++i) {
    INFO("vgg11 unit " << i);
    CHECK(runs_im2col(vgg_units->unit(i)));
    const auto modes = unit_modes_for(vgg_units->unit(i));
    CHECK(std::find(modes.begin(), modes.end(), UnitMode::kIm2col) != modes.end());
  }
  ModelConfig resnet;
  resnet.name = "resnet18";
  resnet.width = 0.125;
  UnitChain resnet_units = build_model(resnet, {1, 28, 28}, 10);
  CHECK_FALSE(runs_im2col(resnet_units->unit(1)));  // a residual block: its convs are nested
  CHECK_FALSE(runs_im2col(nn::Sequential(nn::ReLU())));  // nothing to run as a product
  CHECK_FALSE(runs_im2col(nn::Sequential(nn::Conv2d(nn::Conv2dOptions(4, 4, 3).groups(2)))));
  CHECK_FALSE(runs_im2col(nn::Sequential(
      nn::Conv2d(nn::Conv2dOptions(4, 4, 3).padding(1).padding_mode(torch::kReflect)))));
  CHECK_THROWS_WITH(im2col_forward(nn::Sequential(nn::ReLU()), torch::zeros({1, 1, 2, 2})),
                    Catch::Contains("cannot all run as products"));
  CHECK(unit_mode_from_string("im2col") == UnitMode::kIm2col);
  CHECK(to_string(UnitMode::kIm2col) == "im2col");
}
