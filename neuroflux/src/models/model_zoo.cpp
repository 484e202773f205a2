#include <torch/torch.h>

#include "models/zoo_builders.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/models/model_zoo.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <sstream>

namespace neuroflux {

namespace zoo {

int64_t scaled_channels(int64_t channels, double width) {
  return std::max<int64_t>(4, std::llround(static_cast<double>(channels) * width));
}

int64_t make_divisible(double value, int64_t divisor, int64_t min_value) {
  int64_t rounded = std::max<int64_t>(
      min_value, static_cast<int64_t>(value + divisor / 2.0) / divisor * divisor);
  if (rounded < 0.9 * value) rounded += divisor;
  return rounded;
}

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride, bool bias) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(bias));
}

void append_pool(torch::nn::Sequential& unit, int64_t& height, int64_t& width) {
  const int64_t kh = height >= 2 ? 2 : 1;
  const int64_t kw = width >= 2 ? 2 : 1;
  if (kh == 1 && kw == 1) return;
  unit->push_back(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions({kh, kw}).stride({kh, kw})));
  height /= kh;
  width /= kw;
}

}  // namespace zoo

namespace {

using Builder = std::function<zoo::Units(const zoo::BuildArgs&)>;

// Name -> builder, in the order the names are listed to the user.
const std::vector<std::pair<std::string, Builder>>& builders() {
  static const std::vector<std::pair<std::string, Builder>> table = {
      {"vgg11", zoo::build_vgg},          {"vgg16", zoo::build_vgg},
      {"vgg19", zoo::build_vgg},          {"resnet18", zoo::build_resnet},
      {"resnet34", zoo::build_resnet},    {"mobilenetv2", zoo::build_mobilenetv2},
      {"simplecnn", zoo::build_simplecnn},
  };
  return table;
}

std::string joined_names() {
  std::string out;
  for (const auto& name : model_names()) out += (out.empty() ? "" : ", ") + name;
  return out;
}

torch::nn::Sequential make_classifier(int64_t channels, int64_t num_classes) {
  // Global average pooling makes the classifier independent of the input size, so the same
  // network runs on 28x28 and 32x32 images.
  return torch::nn::Sequential(
      torch::nn::AdaptiveAvgPool2d(torch::nn::AdaptiveAvgPool2dOptions(1)),
      torch::nn::Flatten(), torch::nn::Linear(channels, num_classes));
}

}  // namespace

std::vector<std::string> model_names() {
  std::vector<std::string> names;
  for (const auto& entry : builders()) names.push_back(entry.first);
  return names;
}

UnitChain build_model(const ModelConfig& config, std::vector<int64_t> input_shape,
                      int64_t num_classes) {
  const auto& table = builders();
  auto it = std::find_if(table.begin(), table.end(),
                         [&](const auto& entry) { return entry.first == config.name; });
  if (it == table.end()) {
    throw ConfigError("/model/name: unknown model '" + config.name + "'; expected one of " +
                      joined_names());
  }
  if (!(config.width > 0.0) || !std::isfinite(config.width)) {
    std::ostringstream msg;
    msg << "/model/width: expected a positive number, got " << config.width;
    throw ConfigError(msg.str());
  }
  if (input_shape.size() != 3 ||
      std::any_of(input_shape.begin(), input_shape.end(), [](int64_t d) { return d <= 0; })) {
    std::ostringstream msg;
    msg << "model '" << config.name << "': the input shape must be (channels, height, width) "
        << "with positive sizes, got " << c10::IntArrayRef(input_shape);
    throw Error(msg.str(), ExitCode::kBadInput);
  }
  // The config's values, when set, must agree with the data the model is built for.
  if (config.in_channels > 0 && config.in_channels != input_shape[0]) {
    throw ConfigError("/model/in_channels: " + std::to_string(config.in_channels) +
                      ", but the data has " + std::to_string(input_shape[0]) + " channels");
  }
  if (num_classes <= 0) {
    throw ConfigError("/model/num_classes: expected a positive integer, got " +
                      std::to_string(num_classes));
  }
  if (config.num_classes > 0 && config.num_classes != num_classes) {
    throw ConfigError("/model/num_classes: " + std::to_string(config.num_classes) +
                      ", but the model is built for " + std::to_string(num_classes) +
                      " classes");
  }

  zoo::BuildArgs args;
  args.config = config;
  args.in_channels = input_shape[0];
  args.height = input_shape[1];
  args.width = input_shape[2];
  zoo::Units built = it->second(args);
  torch::nn::Sequential classifier = make_classifier(built.out_channels, num_classes);
  for (auto& unit : built.units) init_weights(*unit);
  init_weights(*classifier);
  if (config.activations == "bitmap") zoo::use_bitmap_activations(built.units, config.name);
  std::optional<rowcentric::RowCentricOptions> row_centric;
  if (config.row_centric.enabled) row_centric = zoo::use_row_centric(built.units, config);
  UnitChain chain(std::move(built.units), std::move(classifier), std::move(input_shape),
                  num_classes, config.name);
  chain->set_row_centric(row_centric);
  return chain;
}

UnitChain chain_from_sequential(torch::nn::Sequential network, std::vector<int64_t> input_shape,
                                int64_t num_classes, torch::nn::Sequential classifier) {
  TORCH_CHECK(network, "chain_from_sequential: the network is null");
  const size_t children = network->size();
  const size_t unit_count = classifier ? children : children - 1;
  if (children == 0 || unit_count == 0) {
    throw Error("chain_from_sequential: the network has " + std::to_string(children) +
                    " children; it needs at least one unit" +
                    (classifier ? "" : " besides its last child, the classifier"),
                ExitCode::kBadInput);
  }
  // The children's registered names, in order ("0", "1", ... or the user's own names), so
  // parameters keep recognisable names: unit3.conv.weight rather than unit3.0.weight.
  const auto named = network->named_children();
  std::vector<torch::nn::Sequential> units;
  for (size_t i = 0; i < unit_count; ++i) {
    torch::nn::Sequential unit;
    // The AnyModule (not the bare Module pointer) carries the child's forward signature; copying
    // it shares the module.
    unit->push_back(named[i].key(), *(network->begin() + i));
    units.push_back(unit);
  }
  if (!classifier) {
    classifier = torch::nn::Sequential();
    classifier->push_back(named[children - 1].key(), *(network->begin() + (children - 1)));
  }
  // The units share the user's modules (no copy): training the chain trains `network`.
  return UnitChain(std::move(units), std::move(classifier), std::move(input_shape), num_classes,
                   "sequential");
}

}  // namespace neuroflux
