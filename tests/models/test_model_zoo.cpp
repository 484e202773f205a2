// The model zoo: every network on both input sizes, the shapes the chain reports, width scaling,
// batch_norm=false, exact parameter counts, initialisation and the errors for bad configs.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "neuroflux/src/models/blocks.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/models/model_zoo.h"

#include <string>
#include <vector>

using neuroflux::build_model;
using neuroflux::ModelConfig;
using neuroflux::UnitChain;

namespace {

ModelConfig model_config(const std::string& name, double width = 1.0, bool batch_norm = true) {
  ModelConfig config;
  config.name = name;
  config.width = width;
  config.batch_norm = batch_norm;
  return config;
}

// The big networks at quarter width keep the whole matrix to about a second on one core.
double test_width(const std::string& name) { return name == "simplecnn" ? 1.0 : 0.25; }

int64_t count_modules_of_type_bn(torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& m : module.modules()) n += m->as<torch::nn::BatchNorm2d>() != nullptr;
  return n;
}

std::vector<int64_t> tail(const at::Tensor& t) {
  return std::vector<int64_t>(t.sizes().begin() + 1, t.sizes().end());
}

// VGG's parameters from its table: conv weight + bias (+ BN weight and bias) per conv, then the
// classifier's Linear. Independent of the implementation, so a wrong layer shows up as a count.
int64_t vgg_expected_params(const std::vector<int64_t>& convs, int64_t in_channels, double width,
                            bool bn, int64_t num_classes) {
  int64_t total = 0;
  int64_t in = in_channels;
  for (int64_t c : convs) {
    const int64_t out = std::max<int64_t>(4, std::llround(c * width));
    total += in * out * 9 + out + (bn ? 2 * out : 0);
    in = out;
  }
  return total + in * num_classes + num_classes;
}

const std::vector<int64_t> kVgg11Convs{64, 128, 256, 256, 512, 512, 512, 512};

}  // namespace

TEST_CASE("model_names lists every network", "[models][unit]") {
  const std::vector<std::string> expected{"vgg11",    "vgg16",       "vgg19",    "resnet18",
                                          "resnet34", "mobilenetv2", "simplecnn"};
  CHECK(neuroflux::model_names() == expected);
}

TEST_CASE("every model runs on 28x28x1 and 32x32x3 and its shapes are consistent",
          "[models][unit]") {
  const std::vector<std::pair<std::string, int64_t>> expected_units{
      {"vgg11", 8},     {"vgg16", 13},       {"vgg19", 16},    {"resnet18", 9},
      {"resnet34", 17}, {"mobilenetv2", 19}, {"simplecnn", 4}};
  for (const auto& [name, units] : expected_units) {
    for (const std::vector<int64_t>& input : {std::vector<int64_t>{1, 28, 28},
                                              std::vector<int64_t>{3, 32, 32}}) {
      DYNAMIC_SECTION(name << " on " << input[0] << "x" << input[1] << "x" << input[2]) {
        torch::manual_seed(0);
        UnitChain chain = build_model(model_config(name, test_width(name)), input, 10);
        chain->eval();
        CHECK(chain->size() == units);
        CHECK(chain->name() == name);
        CHECK(chain->num_classes() == 10);
        CHECK(chain->input_shape() == input);
        CHECK(chain->output_shape(-1) == input);

        torch::NoGradGuard no_grad;
        at::Tensor x = torch::randn({3, input[0], input[1], input[2]});
        at::Tensor logits = chain->forward(x);
        CHECK(logits.sizes() == at::IntArrayRef({3, 10}));

        // Unit by unit, each real output has the shape the dry run recorded.
        at::Tensor h = x;
        for (int64_t i = 0; i < chain->size(); ++i) {
          h = chain->unit(i)->forward(h);
          INFO("unit " << i);
          CHECK(tail(h) == chain->output_shape(i));
        }
        CHECK(torch::equal(chain->classifier()->forward(h), logits));

        // Split anywhere: the two halves chained equal the whole.
        const int64_t mid = chain->size() / 2;
        at::Tensor front = chain->forward_units(x, 0, mid);
        CHECK(tail(front) == chain->output_shape(mid - 1));
        at::Tensor back = chain->forward_units(front, mid, chain->size());
        CHECK(torch::allclose(chain->classifier()->forward(back), logits));
        CHECK(torch::equal(chain->forward_units(x, 0, 0), x));
      }
    }
  }
}

TEST_CASE("vgg skips pools once the map is one pixel", "[models][unit]") {
  torch::manual_seed(0);
  auto spatial = [](UnitChain& chain) {
    std::vector<int64_t> sizes;
    for (int64_t i = 0; i < chain->size(); ++i) sizes.push_back(chain->output_shape(i)[1]);
    return sizes;
  };
  UnitChain small = build_model(model_config("vgg11", 0.25), {1, 28, 28}, 10);
  CHECK(spatial(small) == std::vector<int64_t>{14, 7, 7, 3, 3, 1, 1, 1});
  UnitChain cifar = build_model(model_config("vgg11", 0.25), {3, 32, 32}, 10);
  CHECK(spatial(cifar) == std::vector<int64_t>{16, 8, 8, 4, 4, 2, 2, 1});
  CHECK(cifar->output_shape(7) == std::vector<int64_t>{128, 1, 1});
  // 28x28 reaches one pixel after four pools: the fifth is left out, not applied to 1x1.
  int64_t pools = 0;
  for (const auto& m : small->modules()) pools += m->as<torch::nn::MaxPool2d>() != nullptr;
  CHECK(pools == 4);
}

TEST_CASE("every model builds on tiny and non-square inputs", "[models][unit]") {
  // Pool skipping and stride-2 convs on 1-pixel maps keep every network valid down to 2x2.
  for (const auto& name : neuroflux::model_names()) {
    for (const std::vector<int64_t>& input : {std::vector<int64_t>{2, 2, 2},
                                              std::vector<int64_t>{3, 32, 9}}) {
      DYNAMIC_SECTION(name << " on " << input[0] << "x" << input[1] << "x" << input[2]) {
        torch::manual_seed(0);
        UnitChain chain = build_model(model_config(name, 0.125), input, 4);
        torch::NoGradGuard no_grad;
        at::Tensor x = torch::randn({2, input[0], input[1], input[2]});
        CHECK(chain->forward(x).sizes() == at::IntArrayRef({2, 4}));
        CHECK(tail(chain->forward_units(x, 0, chain->size())) ==
              chain->output_shape(chain->size() - 1));
      }
    }
  }
}

TEST_CASE("resnet and mobilenetv2 downsample as CIFAR networks", "[models][unit]") {
  torch::manual_seed(0);
  UnitChain resnet = build_model(model_config("resnet18", 0.25), {3, 32, 32}, 10);
  // stem, then stages of 2 blocks at 32, 16, 8, 4 pixels; channels 16, 32, 64, 128 at width 0.25.
  CHECK(resnet->output_shape(0) == std::vector<int64_t>{16, 32, 32});
  CHECK(resnet->output_shape(2) == std::vector<int64_t>{16, 32, 32});
  CHECK(resnet->output_shape(3) == std::vector<int64_t>{32, 16, 16});
  CHECK(resnet->output_shape(5) == std::vector<int64_t>{64, 8, 8});
  CHECK(resnet->output_shape(8) == std::vector<int64_t>{128, 4, 4});
  // Only the three stage-entry blocks have a projection shortcut.
  int64_t projections = 0;
  for (const auto& m : resnet->modules()) {
    if (auto* block = m->as<neuroflux::BasicBlockImpl>()) projections += block->has_projection();
  }
  CHECK(projections == 3);

  UnitChain mobile = build_model(model_config("mobilenetv2", 1.0), {3, 32, 32}, 10);
  CHECK(mobile->output_shape(0) == std::vector<int64_t>{32, 32, 32});
  CHECK(mobile->output_shape(1) == std::vector<int64_t>{16, 32, 32});
  CHECK(mobile->output_shape(3) == std::vector<int64_t>{24, 32, 32});  // stage 2 at stride 1
  CHECK(mobile->output_shape(6) == std::vector<int64_t>{32, 16, 16});
  CHECK(mobile->output_shape(17) == std::vector<int64_t>{320, 4, 4});
  CHECK(mobile->output_shape(18) == std::vector<int64_t>{1280, 4, 4});
  // Larger inputs get the ImageNet strides back: 96 / 32 = 3.
  UnitChain large = build_model(model_config("mobilenetv2", 0.25), {3, 96, 96}, 10);
  CHECK(large->output_shape(0) == std::vector<int64_t>{8, 48, 48});
  CHECK(large->output_shape(18) == std::vector<int64_t>{1280, 3, 3});
  // A residual in every block but a stage's first (whose channels change): 17 - 7 = 10.
  int64_t residuals = 0;
  for (const auto& m : mobile->modules()) {
    if (auto* block = m->as<neuroflux::InvertedResidualImpl>()) residuals += block->uses_residual();
  }
  CHECK(residuals == 10);
}

TEST_CASE("vgg11 parameter count matches its architecture", "[models][unit]") {
  torch::manual_seed(0);
  UnitChain chain = build_model(model_config("vgg11"), {3, 32, 32}, 10);
  const int64_t expected = vgg_expected_params(kVgg11Convs, 3, 1.0, true, 10);
  CHECK(expected == 9231114);  // vgg11, width 1, batch norm, 3x32x32 in, 10 classes
  CHECK(chain->parameter_count() == expected);
  CHECK(neuroflux::count_parameters(*chain) == expected);

  // Without BN the 2 * 2752 BN parameters go; the convs keep their biases.
  UnitChain plain = build_model(model_config("vgg11", 1.0, false), {3, 32, 32}, 10);
  CHECK(plain->parameter_count() == vgg_expected_params(kVgg11Convs, 3, 1.0, false, 10));
  CHECK(plain->parameter_count() == expected - 2 * 2752);
}

TEST_CASE("width scales the channel counts", "[models][unit]") {
  torch::manual_seed(0);
  for (double width : {0.5, 0.25, 1.0 / 64}) {
    DYNAMIC_SECTION("vgg11 at width " << width) {
      UnitChain chain = build_model(model_config("vgg11", width), {1, 28, 28}, 7);
      CHECK(chain->parameter_count() == vgg_expected_params(kVgg11Convs, 1, width, true, 7));
    }
  }
  // At 1/64 every layer would have 1..8 channels; the floor of 4 applies to the first.
  UnitChain tiny = build_model(model_config("vgg11", 1.0 / 64), {1, 28, 28}, 7);
  CHECK(tiny->output_shape(0)[0] == 4);
  CHECK(tiny->output_shape(7)[0] == 8);

  // simplecnn at width 0.5: 16, 32, 64, 64 channels, convs without bias (BN follows).
  UnitChain simple = build_model(model_config("simplecnn", 0.5), {3, 32, 32}, 10);
  const int64_t simple_expected = (3 * 16 * 9 + 2 * 16) + (16 * 32 * 9 + 2 * 32) +
                                  (32 * 64 * 9 + 2 * 64) + (64 * 64 * 9 + 2 * 64) +
                                  (64 * 10 + 10);
  CHECK(simple->parameter_count() == simple_expected);

  // For the other families a thinner network has fewer parameters and narrower units.
  for (const std::string name : {"resnet18", "resnet34", "mobilenetv2"}) {
    UnitChain half = build_model(model_config(name, 0.5), {3, 32, 32}, 10);
    UnitChain quarter = build_model(model_config(name, 0.25), {3, 32, 32}, 10);
    INFO(name);
    CHECK(quarter->parameter_count() < half->parameter_count());
    const int64_t last_block = half->size() - 2;
    CHECK(quarter->output_shape(last_block)[0] < half->output_shape(last_block)[0]);
  }
  // MobileNetV2 rounds channels to multiples of 8 (at least 8) and never narrows the last conv.
  UnitChain mobile = build_model(model_config("mobilenetv2", 0.25), {3, 32, 32}, 10);
  for (int64_t i = 0; i < mobile->size(); ++i) {
    INFO("unit " << i);
    CHECK(mobile->output_shape(i)[0] % 8 == 0);
  }
  CHECK(mobile->output_shape(0)[0] == 8);
  CHECK(mobile->output_shape(mobile->size() - 1)[0] == 1280);
  UnitChain wide = build_model(model_config("mobilenetv2", 1.5), {3, 32, 32}, 10);
  CHECK(wide->output_shape(wide->size() - 1)[0] == 1920);
}

TEST_CASE("batch_norm=false leaves no BatchNorm and gives every conv a bias", "[models][unit]") {
  torch::manual_seed(0);
  for (const auto& name : neuroflux::model_names()) {
    DYNAMIC_SECTION(name) {
      UnitChain with_bn = build_model(model_config(name, test_width(name)), {3, 32, 32}, 10);
      CHECK(count_modules_of_type_bn(*with_bn) > 0);
      UnitChain chain = build_model(model_config(name, test_width(name), false), {3, 32, 32}, 10);
      CHECK(count_modules_of_type_bn(*chain) == 0);
      int64_t convs = 0;
      for (const auto& m : chain->modules()) {
        if (auto* conv = m->as<torch::nn::Conv2d>()) {
          ++convs;
          CHECK(conv->bias.defined());
        }
      }
      CHECK(convs > 0);
      torch::NoGradGuard no_grad;
      CHECK(chain->forward(torch::randn({2, 3, 32, 32})).sizes() == at::IntArrayRef({2, 10}));
    }
  }
  // With BN, ResNet and MobileNetV2 convs carry no bias: BN's shift makes it redundant.
  UnitChain resnet = build_model(model_config("resnet18", 0.25), {3, 32, 32}, 10);
  for (const auto& m : resnet->modules()) {
    if (auto* conv = m->as<torch::nn::Conv2d>()) CHECK_FALSE(conv->bias.defined());
  }
}

TEST_CASE("weights are initialised deterministically from the seed", "[models][unit]") {
  auto build = [](int64_t seed) {
    torch::manual_seed(seed);
    return build_model(model_config("resnet18", 0.25), {3, 32, 32}, 10);
  };
  UnitChain a = build(3), b = build(3), c = build(4);
  auto pa = a->parameters(), pb = b->parameters(), pc = c->parameters();
  REQUIRE(pa.size() == pb.size());
  bool all_equal = true, any_differs = false;
  for (size_t i = 0; i < pa.size(); ++i) {
    all_equal = all_equal && torch::equal(pa[i], pb[i]);
    any_differs = any_differs || !torch::equal(pa[i], pc[i]);
  }
  CHECK(all_equal);
  CHECK(any_differs);

  // The init scheme itself: BN identity, Linear small, convs Kaiming fan_out.
  for (const auto& m : a->modules()) {
    if (auto* bn = m->as<torch::nn::BatchNorm2d>()) {
      CHECK(torch::equal(bn->weight, torch::ones_like(bn->weight)));
      CHECK(torch::equal(bn->bias, torch::zeros_like(bn->bias)));
    }
  }
  auto* linear = a->classifier()->ptr(2)->as<torch::nn::Linear>();
  REQUIRE(linear != nullptr);
  CHECK(linear->weight.std().item<double>() == Approx(0.01).epsilon(0.2));
  CHECK(torch::equal(linear->bias, torch::zeros_like(linear->bias)));
  // The stage-2 entry conv: 3x3, 32 outputs at width 0.25, so std = sqrt(2 / (32 * 9)).
  UnitChain big = build(5);
  auto* block = big->unit(3)->ptr(0)->as<neuroflux::BasicBlockImpl>();
  REQUIRE(block != nullptr);
  const double expected_std = std::sqrt(2.0 / (32 * 9));
  CHECK(block->conv1->weight.std().item<double>() == Approx(expected_std).epsilon(0.1));
}

TEST_CASE("backward through the whole chain reaches every parameter", "[models][unit]") {
  for (const auto& name : neuroflux::model_names()) {
    DYNAMIC_SECTION(name) {
      torch::manual_seed(1);
      UnitChain chain = build_model(model_config(name, test_width(name)), {1, 28, 28}, 10);
      chain->train();
      at::Tensor x = torch::randn({4, 1, 28, 28});
      at::Tensor y = torch::tensor({0, 3, 5, 9}, torch::kLong);
      at::Tensor loss = torch::nn::functional::cross_entropy(chain->forward(x), y);
      loss.backward();
      int64_t index = 0;
      for (const auto& item : chain->named_parameters()) {
        INFO(item.key());
        REQUIRE(item.value().grad().defined());
        CHECK(item.value().grad().abs().sum().item<double>() > 0.0);
        ++index;
      }
      CHECK(index > 0);
    }
  }
}

// The message of the ConfigError `build` throws; fails the test when it throws anything else.
template <typename F>
std::string config_error_message(F build) {
  try {
    build();
  } catch (const neuroflux::ConfigError& e) {
    CHECK(e.code() == neuroflux::ExitCode::kBadInput);
    return e.what();
  }
  FAIL("no ConfigError thrown");
  return "";
}

TEST_CASE("bad model configs are ConfigErrors naming the field", "[models][unit]") {
  using Catch::Matchers::Contains;
  using Catch::Matchers::StartsWith;
  const std::string unknown =
      config_error_message([] { build_model(model_config("vgg12"), {3, 32, 32}, 10); });
  CHECK_THAT(unknown, StartsWith("/model/name: unknown model 'vgg12'; expected one of vgg11, "));
  CHECK_THAT(unknown, Contains("mobilenetv2") && Contains("simplecnn"));
  CHECK_THAT(config_error_message([] { build_model(model_config("vgg11", 0.0), {3, 32, 32}, 10); }),
             StartsWith("/model/width"));
  CHECK_THAT(
      config_error_message([] { build_model(model_config("vgg11", -1.0), {3, 32, 32}, 10); }),
      StartsWith("/model/width") && Contains("-1"));
  CHECK_THAT(config_error_message([] { build_model(model_config("simplecnn"), {3, 32, 32}, 0); }),
             StartsWith("/model/num_classes"));
  CHECK_THAT(config_error_message([] {
               ModelConfig mismatch = model_config("simplecnn");
               mismatch.in_channels = 1;
               build_model(mismatch, {3, 32, 32}, 10);
             }),
             StartsWith("/model/in_channels"));
  CHECK_THROWS_AS(build_model(model_config("simplecnn"), {32, 32}, 10), neuroflux::Error);
}
