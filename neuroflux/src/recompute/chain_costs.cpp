#include "neuroflux/recompute/chain_costs.h"

#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/randn_like.h>
#include <nlohmann/json.hpp>
#include <torch/nn/functional/loss.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/recompute/scheduled_chain.h"

namespace neuroflux {

using nlohmann::json;

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int64_t scale(int64_t bytes, double factor) {
  return static_cast<int64_t>(static_cast<double>(bytes) * factor + 0.5);
}

// Host-copy bandwidth as the offload store copies: one memcpy of `bytes`, best of three.
double measure_copy_bandwidth(int64_t bytes) {
  bytes = std::max<int64_t>(bytes, 1 << 20);
  std::vector<char> from(static_cast<size_t>(bytes), 1), to(static_cast<size_t>(bytes), 0);
  double best = 1e30;
  for (int i = 0; i < 3; ++i) {
    const auto start = std::chrono::steady_clock::now();
    std::memcpy(to.data(), from.data(), from.size());
    best = std::min(best, seconds_since(start));
  }
  return static_cast<double>(bytes) / std::max(best, 1e-9);
}

json stage_to_json(const StageCost& s) {
  return {{"forward_seconds", s.forward_seconds},   {"backward_seconds", s.backward_seconds},
          {"input_bytes", s.input_bytes},           {"output_bytes", s.output_bytes},
          {"saved_bytes", s.saved_bytes},           {"forward_transient", s.forward_transient},
          {"backward_transient", s.backward_transient}};
}

}  // namespace

int64_t ChainCosts::static_bytes() const {
  const int64_t labels = batch_size * static_cast<int64_t>(sizeof(int64_t));
  return state_bytes + (stages.empty() ? 0 : stages.front().input_bytes) + labels;
}

ChainCosts ChainCosts::scaled_to(int64_t batch) const {
  ChainCosts scaled = *this;
  scaled.batch_size = batch;
  const double factor = static_cast<double>(batch) / static_cast<double>(batch_size);
  for (StageCost& s : scaled.stages) {
    s.forward_seconds *= factor;
    s.backward_seconds *= factor;
    s.input_bytes = scale(s.input_bytes, factor);
    s.output_bytes = scale(s.output_bytes, factor);
    s.saved_bytes = scale(s.saved_bytes, factor);
    s.forward_transient = scale(s.forward_transient, factor);
    s.backward_transient = scale(s.backward_transient, factor);
  }
  return scaled;
}

json ChainCosts::to_json() const {
  json j = {{"batch_size", batch_size},
            {"state_bytes", state_bytes},
            {"copy_bytes_per_second", copy_bytes_per_second},
            {"stages", json::array()}};
  for (const StageCost& s : stages) j["stages"].push_back(stage_to_json(s));
  return j;
}

ChainCosts ChainCosts::from_json(const json& j) {
  ChainCosts c;
  c.batch_size = j.at("batch_size");
  c.state_bytes = j.at("state_bytes");
  c.copy_bytes_per_second = j.value("copy_bytes_per_second", 0.0);
  for (const json& s : j.at("stages")) {
    StageCost stage;
    stage.forward_seconds = s.at("forward_seconds");
    stage.backward_seconds = s.at("backward_seconds");
    stage.input_bytes = s.at("input_bytes");
    stage.output_bytes = s.at("output_bytes");
    stage.saved_bytes = s.at("saved_bytes");
    stage.forward_transient = s.at("forward_transient");
    stage.backward_transient = s.at("backward_transient");
    c.stages.push_back(stage);
  }
  return c;
}

ChainCosts measure_chain_costs(UnitChain& model, int64_t batch, const c10::Device& device,
                               int64_t optimizer_slots, int repeats,
                               bool gradients_freed_in_backward) {
  MemoryMeter& meter = MemoryMeter::of(device);
  const std::vector<int64_t>& shape = model->input_shape();
  const auto options = at::TensorOptions().device(device);
  const at::Tensor y = at::randint(0, model->num_classes(), {batch}, options.dtype(at::kLong));

  ChainCosts costs;
  costs.batch_size = batch;
  int64_t param_bytes = 0;
  for (const at::Tensor& p : model->parameters()) param_bytes += static_cast<int64_t>(p.nbytes());
  const int64_t gradient_slots = gradients_freed_in_backward ? 0 : 1;
  costs.state_bytes = param_bytes * (1 + gradient_slots + optimizer_slots);
  auto free_gradients = [&model] {
    for (at::Tensor& p : model->parameters()) p.mutable_grad() = at::Tensor();
  };

  // One stage at a time, holding only its input, so profiling needs no more memory than the
  // stage itself. Without fused updates the first pass allocates the stage's gradients and the
  // last pass's bytes count; with them every pass allocates the stage's gradients in its
  // backward, and none are left for the next stage (profiling with all of them alive asked
  // 5.8 MB of vgg11 at batch 2 where the run itself needs 4.1).
  const int64_t stages = model->size() + 1;
  at::Tensor stage_input = at::randn({batch, shape[0], shape[1], shape[2]}, options);
  for (int64_t s = 0; s < stages; ++s) {
    StageCost cost;
    cost.input_bytes = static_cast<int64_t>(stage_input.nbytes());
    cost.forward_seconds = cost.backward_seconds = 1e30;
    const bool last = s + 1 == stages;
    for (int r = 0; r < std::max(2, repeats); ++r) {
      if (gradients_freed_in_backward) free_gradients();
      const at::Tensor input = stage_input.detach().requires_grad_(s > 0);
      const int64_t before = meter.current();
      meter.reset_peak();
      auto start = std::chrono::steady_clock::now();
      at::Tensor out = run_stage(model, s, input);
      if (last) out = torch::nn::functional::cross_entropy(out, y);
      cost.forward_seconds = std::min(cost.forward_seconds, seconds_since(start));
      const int64_t after = meter.current();
      cost.saved_bytes = after - before;
      cost.forward_transient = meter.peak() - after;
      cost.output_bytes = last ? batch * model->num_classes() * static_cast<int64_t>(sizeof(float))
                               : static_cast<int64_t>(out.nbytes());
      const at::Tensor grad = last ? at::Tensor() : at::randn_like(out);
      const int64_t before_backward = meter.current();
      meter.reset_peak();
      start = std::chrono::steady_clock::now();
      if (last) {
        out.backward();
      } else {
        out.backward(grad);
      }
      cost.backward_seconds = std::min(cost.backward_seconds, seconds_since(start));
      cost.backward_transient = meter.peak() - before_backward;
    }
    costs.stages.push_back(cost);
    if (!last) {
      at::NoGradGuard no_grad;
      stage_input = run_stage(model, s, stage_input);
    }
  }
  int64_t largest = 0;
  for (const StageCost& s : costs.stages) largest = std::max(largest, s.input_bytes);
  costs.copy_bytes_per_second = measure_copy_bandwidth(largest);
  free_gradients();
  return costs;
}

}  // namespace neuroflux
