#include "neuroflux/local/aux_head.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/models/model_zoo.h"
#include "neuroflux/models/sequential_stage.h"
#include "neuroflux/util/errors.h"

namespace neuroflux {

namespace nn = torch::nn;

nlohmann::json AuxHeadSpec::to_json() const {
  nlohmann::json j = {{"pool", pool},         {"width", width},  {"classifier", classifier},
                      {"batch_norm", batch_norm}, {"family", family}};
  if (family == "copies") j["depth"] = depth;  // other families' JSON stays as it was
  return j;
}

AuxHeadSpec AuxHeadSpec::from_json(const nlohmann::json& j) {
  AuxHeadSpec s;
  s.pool = j.at("pool");
  s.width = j.at("width");
  s.classifier = j.value("classifier", false);
  s.batch_norm = j.value("batch_norm", true);
  s.family = j.value("family", std::string("conv"));
  s.depth = j.value("depth", int64_t{0});
  if (s.family != "conv" && s.family != "deep" && s.family != "copies")
    throw nlohmann::json::other_error::create(501, "unknown head family " + s.family, nullptr);
  return s;
}

namespace {

int64_t pooled(int64_t size, int64_t pool) { return (size + pool - 1) / pool; }  // ceil_mode

/// The deep family pools a side to at most this many pixels, never to one on purpose.
constexpr int64_t kDeepHeadSide = 4;
int64_t deep_side(int64_t size) { return std::min(kDeepHeadSide, size); }

nn::Sequential make_deep_head(const std::vector<int64_t>& input_shape, const AuxHeadSpec& spec,
                              int64_t num_classes) {
  const int64_t side_h = deep_side(input_shape[1]);
  const int64_t side_w = deep_side(input_shape[2]);
  nn::Sequential head;
  head->push_back(nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions({side_h, side_w})));
  int64_t channels = input_shape[0];
  for (int layer = 0; layer < 2; ++layer) {
    head->push_back(
        nn::Conv2d(nn::Conv2dOptions(channels, spec.width, 1).bias(!spec.batch_norm)));
    if (spec.batch_norm) head->push_back(nn::BatchNorm2d(spec.width));
    head->push_back(nn::ReLU());
    channels = spec.width;
  }
  head->push_back(nn::Flatten());
  head->push_back(nn::Linear(spec.width * side_h * side_w, spec.width));
  head->push_back(nn::ReLU());
  head->push_back(nn::Linear(spec.width, num_classes));
  return head;
}

/// A fresh copy of `unit`: the same layers, new weights (the zoo's initialisation) and batch-norm
/// statistics, so the head learns its own features rather than starting as the unit's twin.
SequentialStage fresh_copy(const nn::Sequential& unit) {
  std::shared_ptr<nn::Module> cloned;
  try {
    cloned = unit->clone();
  } catch (const c10::Error& e) {
    if (is_out_of_memory(e)) throw;  // a budget refusal, not a unit that cannot be copied
    throw ConfigError("/neuroflux/aux: \"copies\" heads copy the model's units, and a unit of " +
                      unit->name() + " cannot be copied (" + e.what_without_backtrace() + ")");
  }
  auto copy = std::dynamic_pointer_cast<nn::SequentialImpl>(cloned);
  TORCH_CHECK(copy, "aux head: a unit's copy is not a Sequential");
  init_weights(*copy);
  torch::NoGradGuard no_grad;
  for (const auto& m : copy->modules())
    if (auto* bn = m->as<nn::BatchNorm2d>()) bn->reset_running_stats();
  return as_stage(nn::Sequential(copy));
}

nn::Sequential make_copies_head(const std::vector<int64_t>& input_shape, const AuxHeadSpec& spec,
                                int64_t num_classes,
                                const std::vector<nn::Sequential>& following) {
  TORCH_CHECK(spec.depth >= 0 && spec.depth <= static_cast<int64_t>(following.size()),
              "aux head: a copies head of depth ", spec.depth, " after ", following.size(),
              " units");
  nn::Sequential head;
  for (int64_t d = 0; d < spec.depth; ++d) head->push_back(fresh_copy(following[d]));
  int64_t channels = input_shape[0];
  if (spec.depth > 0) {
    // The copies' output channels, from a dry run in eval mode (batch norm on one sample).
    UntrackedScope untracked;
    torch::NoGradGuard no_grad;
    std::vector<int64_t> shape{1};
    shape.insert(shape.end(), input_shape.begin(), input_shape.end());
    const auto params = head->parameters();
    const c10::Device device = params.empty() ? c10::Device(torch::kCPU) : params[0].device();
    head->eval();
    channels = head->forward(torch::zeros(shape, torch::TensorOptions(device))).size(1);
    head->train();
  }
  head->push_back(nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions(1)));
  head->push_back(nn::Flatten());
  auto linear = nn::Linear(channels, num_classes);
  init_weights(*linear);
  head->push_back(linear);
  return head;
}

}  // namespace

std::vector<nn::Sequential> following_units(UnitChainImpl& chain, int64_t unit) {
  std::vector<nn::Sequential> units;
  for (int64_t j = unit + 1; j < chain.size(); ++j) {
    if (chain.module_sizes().empty()) {
      units.push_back(chain.unit(j));
      continue;
    }
    // A module's children are its units' stages (group_units).
    for (const auto& child : chain.unit(j)->children())
      units.push_back(nn::Sequential(std::dynamic_pointer_cast<nn::SequentialImpl>(child)));
  }
  return units;
}

std::vector<AuxHeadSpec> copies_head_specs(UnitChainImpl& chain, int64_t max_depth) {
  const int64_t n = chain.size();
  std::vector<AuxHeadSpec> specs(static_cast<size_t>(n));
  const auto first = static_cast<int64_t>(following_units(chain, 0).size());
  const int64_t top = max_depth > 0 ? std::min(max_depth, first) : first;
  for (int64_t i = 0; i + 1 < n; ++i) {
    AuxHeadSpec& s = specs[static_cast<size_t>(i)];
    s.family = "copies";
    s.width = 1;  // unused by copies heads; kept valid for the spec checks
    const auto left = static_cast<int64_t>(following_units(chain, i).size());
    const double scaled = static_cast<double>(top * (n - 1 - i)) / static_cast<double>(n - 1);
    s.depth = std::min(left, static_cast<int64_t>(std::llround(scaled)));
  }
  specs.back() = AuxHeadSpec{1, 0, true};
  return specs;
}

nn::Sequential make_aux_head(const std::vector<int64_t>& input_shape, const AuxHeadSpec& spec,
                             int64_t num_classes, const std::vector<nn::Sequential>& following) {
  TORCH_CHECK(input_shape.size() == 3, "aux head: expected a (C, H, W) input shape");
  TORCH_CHECK(spec.pool >= 1 && spec.width >= 1, "aux head: bad spec pool=", spec.pool,
              " width=", spec.width);
  if (spec.family == "deep") return make_deep_head(input_shape, spec, num_classes);
  if (spec.family == "copies")
    return make_copies_head(input_shape, spec, num_classes, following);
  TORCH_CHECK(spec.family == "conv", "aux head: unknown family ", spec.family);
  nn::Sequential head;
  if (spec.pool > 1)
    head->push_back(
        nn::AvgPool2d(nn::AvgPool2dOptions(spec.pool).stride(spec.pool).ceil_mode(true)));
  head->push_back(nn::Conv2d(
      nn::Conv2dOptions(input_shape[0], spec.width, 3).padding(1).bias(!spec.batch_norm)));
  if (spec.batch_norm) head->push_back(nn::BatchNorm2d(spec.width));
  head->push_back(nn::ReLU());
  head->push_back(nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions(1)));
  head->push_back(nn::Flatten());
  head->push_back(nn::Linear(spec.width, num_classes));
  return head;
}

double aux_head_activation_bytes(const std::vector<int64_t>& input_shape,
                                 const AuxHeadSpec& spec) {
  if (spec.family == "copies")
    return 4.0 * static_cast<double>(input_shape[0] * input_shape[1] * input_shape[2]);
  if (spec.family == "deep") {
    const double s2 = static_cast<double>(deep_side(input_shape[1]) * deep_side(input_shape[2]));
    const double width = static_cast<double>(spec.width);
    return 4.0 * ((static_cast<double>(input_shape[0]) + 6.0 * width) * s2 + 2.0 * width);
  }
  const double hw = static_cast<double>(pooled(input_shape[1], spec.pool)) *
                    static_cast<double>(pooled(input_shape[2], spec.pool));
  return 4.0 * (static_cast<double>(input_shape[0]) + 3.0 * spec.width) * hw;
}

AuxHeadSpec choose_adaptive_head(const UnitCost& unit, double memory_fraction,
                                 double compute_fraction,
                                 const std::function<double(const AuxHeadSpec&)>& head_seconds) {
  constexpr int64_t kMinWidth = 16, kMaxWidth = 256, kProbeWidth = 64;
  const auto& shape = unit.output_shape;
  const int64_t largest_side = std::max(shape[1], shape[2]);
  AuxHeadSpec chosen{1, kMinWidth, false};
  for (int64_t pool = 1;; pool *= 2) {
    chosen.pool = pool;
    const double hw = static_cast<double>(pooled(shape[1], pool) * pooled(shape[2], pool));
    const double f_mem =
        (memory_fraction * unit.activation_bytes_per_sample / (4.0 * hw) - shape[0]) / 3.0;
    double f_comp = kMaxWidth;
    if (unit.seconds_per_sample > 0) {
      const double probe = head_seconds({pool, kProbeWidth, false});
      if (probe > 0) f_comp = kProbeWidth * compute_fraction * unit.seconds_per_sample / probe;
    }
    const double f = std::min(f_mem, f_comp);
    if (f >= kMinWidth) {
      chosen.width = std::min<int64_t>(kMaxWidth, static_cast<int64_t>(std::floor(f)));
      return chosen;
    }
    if (pooled(largest_side, pool) <= 1) break;  // coarsest possible: take the floor width
  }
  chosen.width = kMinWidth;
  return chosen;
}

}  // namespace neuroflux
