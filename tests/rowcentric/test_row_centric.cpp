// The row-centric executor against the plain stack: outputs and input / weight / bias gradients
// for random chains of convs (kernels, strides, paddings, dilations, groups), ReLUs and pools,
// both schemes, band counts from one to more than the rows; batch norm refused; "auto" bands.
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <random>
#include <sstream>

#include "neuroflux/rowcentric/row_centric.h"

namespace rowcentric = neuroflux::rowcentric;
namespace nn = torch::nn;
using Catch::Matchers::Contains;

namespace {

int64_t pick(std::mt19937& rng, int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}

// A random chain that keeps a map of at least one row and column on an h x w input.
nn::Sequential random_chain(std::mt19937& rng, int64_t channels, int64_t h, int64_t w,
                            std::string& description) {
  nn::Sequential seq;
  std::ostringstream desc;
  const int64_t layers = pick(rng, 2, 6);
  for (int64_t i = 0; i < layers; ++i) {
    const int64_t kind = pick(rng, 0, 5);
    if (kind <= 2) {  // conv
      const int64_t k = pick(rng, 1, 4), s = pick(rng, 1, 2), d = pick(rng, 1, 2);
      const int64_t p = pick(rng, 0, k);
      const int64_t groups = channels % 2 == 0 && pick(rng, 0, 3) == 0 ? 2 : 1;
      const int64_t out = groups * pick(rng, 1, 3);
      const int64_t extent = d * (k - 1) + 1;
      if (h + 2 * p < extent || w + 2 * p < extent) continue;
      seq->push_back(nn::Conv2d(nn::Conv2dOptions(channels, out, k).stride(s).padding(p)
                                    .dilation(d).groups(groups).bias(pick(rng, 0, 3) != 0)));
      desc << "conv(k" << k << " s" << s << " p" << p << " d" << d << " g" << groups << ") ";
      channels = out;
      h = (h + 2 * p - extent) / s + 1;
      w = (w + 2 * p - extent) / s + 1;
    } else if (kind == 3) {
      seq->push_back(nn::ReLU());
      desc << "relu ";
    } else if (kind == 4) {  // max pool
      const int64_t k = pick(rng, 2, 3), s = pick(rng, 1, 3), p = pick(rng, 0, k / 2);
      const bool ceil = pick(rng, 0, 1) == 1;
      if (h + 2 * p < k || w + 2 * p < k) continue;
      seq->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(k).stride(s).padding(p).ceil_mode(ceil)));
      desc << "maxpool(k" << k << " s" << s << " p" << p << (ceil ? " ceil" : "") << ") ";
      auto size = [&](int64_t n) {
        const int64_t span = n + 2 * p - k;
        int64_t o = (ceil ? (span + s - 1) / s : span / s) + 1;
        if (ceil && (o - 1) * s >= n + p) --o;
        return o;
      };
      h = size(h);
      w = size(w);
    } else {  // avg pool, padding counted
      const int64_t p = pick(rng, 0, 1);
      if (h + 2 * p < 2 || w + 2 * p < 2) continue;
      seq->push_back(nn::AvgPool2d(nn::AvgPool2dOptions(2).stride(2).padding(p)));
      desc << "avgpool(k2 s2 p" << p << ") ";
      h = (h + 2 * p - 2) / 2 + 1;
      w = (w + 2 * p - 2) / 2 + 1;
    }
  }
  if (seq->is_empty()) seq->push_back(nn::ReLU());
  description = desc.str();
  return seq;
}

std::vector<at::Tensor> stack_grads_of(const nn::Sequential& seq) {
  std::vector<at::Tensor> g;
  for (const auto& p : seq->parameters()) g.push_back(p.grad().clone());
  return g;
}

void zero_grads(nn::Sequential& seq) {
  for (auto& p : seq->parameters()) {
    if (p.grad().defined()) p.mutable_grad().zero_();
  }
}

}  // namespace

TEST_CASE("row-centric stacks equal the plain stack in outputs and all gradients",
          "[rowcentric][unit]") {
  std::mt19937 rng(42);
  torch::manual_seed(42);
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t n = pick(rng, 1, 2), c = pick(rng, 1, 4);
    const int64_t h = pick(rng, 6, 24), w = pick(rng, 4, 9);
    std::string description;
    nn::Sequential seq = random_chain(rng, c, h, w, description);
    seq->to(torch::kDouble);
    INFO("trial " << trial << ": input " << n << "x" << c << "x" << h << "x" << w << ", "
                  << description);
    const at::Tensor x0 = torch::randn({n, c, h, w}, torch::dtype(torch::kDouble));

    at::Tensor x_ref = x0.clone().requires_grad_(true);
    const at::Tensor ref = seq->forward(x_ref);
    const at::Tensor g = torch::randn(ref.sizes(), torch::dtype(torch::kDouble));
    ref.backward(g);
    const auto ref_grads = stack_grads_of(seq);
    const int64_t rows_out = ref.size(2);

    const auto layers = rowcentric::row_layers_of(seq, "chain");
    for (const auto scheme : {rowcentric::RowScheme::kOverlap, rowcentric::RowScheme::kTwoPhase}) {
      for (const int64_t stripes : {int64_t{1}, int64_t{2}, int64_t{3}, rows_out, rows_out + 5}) {
        INFO("scheme " << rowcentric::to_string(scheme) << ", " << stripes << " stripes");
        zero_grads(seq);
        at::Tensor x = x0.clone().requires_grad_(true);
        rowcentric::RowCentricOptions options;
        options.stripes = stripes;
        options.scheme = scheme;
        const at::Tensor y = rowcentric::row_centric_forward(x, layers, options);
        REQUIRE(y.sizes() == ref.sizes());
        CHECK(torch::allclose(y, ref, 1e-10, 1e-10));
        y.backward(g);
        CHECK(torch::allclose(x.grad(), x_ref.grad(), 1e-10, 1e-10));
        const auto got = stack_grads_of(seq);
        REQUIRE(got.size() == ref_grads.size());
        for (size_t i = 0; i < got.size(); ++i) {
          INFO("parameter " << i);
          CHECK(torch::allclose(got[i], ref_grads[i], 1e-10, 1e-10));
        }
      }
    }
  }
}

TEST_CASE("a row-centric vgg-like stack in float32 matches within float tolerance",
          "[rowcentric][unit]") {
  torch::manual_seed(5);
  nn::Sequential seq(nn::Conv2d(nn::Conv2dOptions(3, 8, 3).padding(1)), nn::ReLU(),
                     nn::Conv2d(nn::Conv2dOptions(8, 8, 3).padding(1)), nn::ReLU(),
                     nn::MaxPool2d(2), nn::Conv2d(nn::Conv2dOptions(8, 16, 3).padding(1)),
                     nn::ReLU(), nn::MaxPool2d(2));
  const at::Tensor x0 = torch::randn({2, 3, 32, 32});
  at::Tensor xr = x0.clone().requires_grad_(true);
  const at::Tensor ref = seq->forward(xr);
  ref.sum().backward();
  const auto ref_grads = stack_grads_of(seq);
  for (const auto scheme : {rowcentric::RowScheme::kOverlap, rowcentric::RowScheme::kTwoPhase}) {
    rowcentric::RowCentricStack stack(seq, rowcentric::RowCentricOptions{4, scheme});
    zero_grads(seq);
    at::Tensor x = x0.clone().requires_grad_(true);
    const at::Tensor y = stack->forward(x);
    CHECK(torch::allclose(y, ref, 1e-4, 1e-5));
    y.sum().backward();
    CHECK(torch::allclose(x.grad(), xr.grad(), 1e-4, 1e-5));
    const auto got = stack_grads_of(seq);
    for (size_t i = 0; i < got.size(); ++i) CHECK(torch::allclose(got[i], ref_grads[i], 1e-3, 1e-4));
  }
  // The stack shares the Sequential's parameters, and a clone does not.
  rowcentric::RowCentricStack stack(seq, rowcentric::RowCentricOptions{});
  CHECK(stack->parameters().size() == seq->parameters().size());
  auto copy = std::dynamic_pointer_cast<rowcentric::RowCentricStackImpl>(stack->clone());
  REQUIRE(copy);
  CHECK(copy->parameters()[0].data_ptr() != seq->parameters()[0].data_ptr());
  CHECK(torch::equal(copy->parameters()[0], seq->parameters()[0]));
}

TEST_CASE("row-centric stacks refuse batch norm and other layers by name", "[rowcentric][unit]") {
  nn::Sequential with_bn(nn::Conv2d(nn::Conv2dOptions(3, 4, 3)), nn::BatchNorm2d(4), nn::ReLU());
  CHECK_THROWS_WITH(rowcentric::row_layers_of(with_bn, "unit2"),
                    Contains("unit2.1") && Contains("BatchNorm2d") &&
                        Contains("statistics over the whole map"));
  nn::Sequential with_linear(nn::Conv2d(nn::Conv2dOptions(3, 4, 3)), nn::Flatten());
  CHECK_THROWS_WITH(rowcentric::row_layers_of(with_linear, "s"),
                    Contains("s.1") && Contains("Flatten") && Contains("cannot run row-centric"));
  nn::Sequential reflect(nn::Conv2d(nn::Conv2dOptions(3, 4, 3).padding(1).padding_mode(torch::kReflect)));
  CHECK_THROWS_WITH(rowcentric::row_layers_of(reflect, "s"), Contains("padding_mode"));
  CHECK_FALSE(rowcentric::is_row_stack(with_bn));
  CHECK(rowcentric::is_row_stack(
      nn::Sequential(nn::Conv2d(nn::Conv2dOptions(3, 4, 3)), nn::ReLU())));
}

TEST_CASE("stripes = auto picks the largest band whose estimate fits the free budget",
          "[rowcentric][unit]") {
  nn::Sequential seq(nn::Conv2d(nn::Conv2dOptions(3, 16, 3).padding(1)), nn::ReLU(),
                     nn::Conv2d(nn::Conv2dOptions(16, 16, 3).padding(1)), nn::ReLU());
  const auto layers = rowcentric::row_layers_of(seq, "s");
  const std::vector<int64_t> sizes{4, 3, 64, 64};
  rowcentric::RowCentricOptions automatic;
  automatic.stripes = 0;
  const int64_t one = rowcentric::row_centric_peak_estimate(layers, sizes, 4, 1);
  const int64_t eight = rowcentric::row_centric_peak_estimate(layers, sizes, 4, 8);
  const int64_t rows = rowcentric::row_centric_peak_estimate(layers, sizes, 4, 64);
  CHECK(one > eight);
  CHECK(eight > rows);
  CHECK(rowcentric::resolve_stripes(layers, sizes, automatic, one) == 1);
  const int64_t s = rowcentric::resolve_stripes(layers, sizes, automatic, eight);
  CHECK(s <= 8);
  CHECK(rowcentric::row_centric_peak_estimate(layers, sizes, 4, s) <= eight);
  REQUIRE(s > 1);
  CHECK(rowcentric::row_centric_peak_estimate(layers, sizes, 4, s - 1) > eight);
  CHECK_THROWS_WITH(rowcentric::resolve_stripes(layers, sizes, automatic, rows - 1),
                    Contains("even one-row bands need about"));
  rowcentric::RowCentricOptions fixed;
  fixed.stripes = 500;
  CHECK(rowcentric::resolve_stripes(layers, sizes, fixed, 0) == 64);  // clamped to the rows
}

TEST_CASE("stripes = auto asks the caller's free_bytes at every forward call",
          "[rowcentric][unit]") {
  torch::manual_seed(9);
  nn::Sequential seq(nn::Conv2d(nn::Conv2dOptions(3, 8, 3).padding(1)), nn::ReLU(),
                     nn::Conv2d(nn::Conv2dOptions(8, 8, 3).padding(1)));
  const auto layers = rowcentric::row_layers_of(seq, "s");
  const at::Tensor x = torch::randn({2, 3, 16, 16});
  rowcentric::RowCentricOptions automatic;
  automatic.stripes = 0;
  CHECK_THROWS_WITH(rowcentric::row_centric_forward(x, layers, automatic),
                    Contains("stripes=\"auto\" needs a memory budget"));

  const int64_t four_bands = rowcentric::row_centric_peak_estimate(layers, x.sizes(), 4, 4);
  std::vector<c10::Device> asked;
  automatic.free_bytes = [&](const c10::Device& device) {
    asked.push_back(device);
    return four_bands;
  };
  const at::Tensor ref = seq->forward(x);
  CHECK(torch::allclose(rowcentric::row_centric_forward(x, layers, automatic), ref, 1e-4, 1e-5));
  CHECK(torch::allclose(rowcentric::row_centric_forward(x, layers, automatic), ref, 1e-4, 1e-5));
  REQUIRE(asked.size() == 2);  // what is free changes between calls, so it is asked each time
  CHECK(asked[0] == x.device());

  // Less than one-row bands need: refused as resolve_stripes refuses it.
  const int64_t one_row = rowcentric::row_centric_peak_estimate(layers, x.sizes(), 4, 16);
  automatic.free_bytes = [&](const c10::Device&) { return one_row - 1; };
  CHECK_THROWS_WITH(rowcentric::row_centric_forward(x, layers, automatic),
                    Contains("even one-row bands need about"));
}
