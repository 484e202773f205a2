#include "neuroflux/local/aux_head.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

namespace neuroflux {

namespace nn = torch::nn;

nlohmann::json AuxHeadSpec::to_json() const {
  return {{"pool", pool},         {"width", width},  {"classifier", classifier},
          {"batch_norm", batch_norm}, {"family", family}};
}

AuxHeadSpec AuxHeadSpec::from_json(const nlohmann::json& j) {
  AuxHeadSpec s;
  s.pool = j.at("pool");
  s.width = j.at("width");
  s.classifier = j.value("classifier", false);
  s.batch_norm = j.value("batch_norm", true);
  s.family = j.value("family", std::string("conv"));
  if (s.family != "conv" && s.family != "deep")
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

}  // namespace

nn::Sequential make_aux_head(const std::vector<int64_t>& input_shape, const AuxHeadSpec& spec,
                             int64_t num_classes) {
  TORCH_CHECK(input_shape.size() == 3, "aux head: expected a (C, H, W) input shape");
  TORCH_CHECK(spec.pool >= 1 && spec.width >= 1, "aux head: bad spec pool=", spec.pool,
              " width=", spec.width);
  if (spec.family == "deep") return make_deep_head(input_shape, spec, num_classes);
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
