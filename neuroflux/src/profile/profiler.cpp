#include "neuroflux/profile/profiler.h"

#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <optional>

#include "neuroflux/local/unit_step.h"
#include "neuroflux/memory/allocation_trace.h"
#include "neuroflux/memory/device_residency.h"
#include "neuroflux/memory/measured_phase.h"
#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/models/module_snapshot.h"
#include "neuroflux/optim/optim.h"
#include "neuroflux/util/intra_op_threads.h"
#include "neuroflux/util/progress.h"

namespace neuroflux {

namespace {

int64_t tensor_bytes(const std::vector<at::Tensor>& tensors) {
  int64_t bytes = 0;
  for (const auto& t : tensors) bytes += t.numel() * static_cast<int64_t>(t.element_size());
  return bytes;
}

std::vector<int64_t> batch_shape(int64_t batch, const std::vector<int64_t>& sample) {
  std::vector<int64_t> shape{batch};
  shape.insert(shape.end(), sample.begin(), sample.end());
  return shape;
}

/// Least-squares line through (batch, bytes); one point gives a line through the origin.
std::pair<double, double> fit_line(const std::vector<std::pair<int64_t, int64_t>>& points) {
  if (points.size() == 1)
    return {0.0, static_cast<double>(points[0].second) / static_cast<double>(points[0].first)};
  double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const auto& [b, y] : points) {
    const double x = static_cast<double>(b), v = static_cast<double>(y);
    n += 1;
    sx += x;
    sy += v;
    sxx += x * x;
    sxy += x * v;
  }
  const double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
  const double intercept = (sy - slope * sx) / n;
  // A negative intercept (allocator rounding, tiny maps) would under-predict small batches.
  if (intercept < 0) return {0.0, std::max(slope, sy / sx)};
  return {intercept, slope};
}

}  // namespace

ProfilerOptions profiler_options(const Config& config) {
  ProfilerOptions o;
  o.max_batch = config.train.max_batch_size;
  o.train = config.train;
  o.memory = config.memory;
  o.unit_modes = config.neuroflux.unit_modes == "auto";
  o.fewer_threads = config.neuroflux.block_threads == "auto";
  return o;
}

Profiler::Profiler(ProfilerOptions options, c10::Device device)
    : options_(std::move(options)), device_(device) {}

UnitProfile Profiler::profile_unit(LocalModel& model, int64_t index) {
  MemoryMeter& meter = MemoryMeter::of(device_);
  auto& unit = model->chain()->unit(index);
  auto& head = model->head(index);
  auto& decoder = model->loss_terms(index).decoder;
  std::optional<OnDeviceWhileAlive> on_device;
  if (options_.host_resident_model) on_device.emplace(block_modules(model, index, index), device_);
  const ModuleSnapshot unit_snapshot(*unit), head_snapshot(*head);
  const std::optional<ModuleSnapshot> decoder_snapshot =
      decoder ? std::optional<ModuleSnapshot>(std::in_place, *decoder) : std::nullopt;
  unit->train();
  head->train();

  UnitProfile p;
  p.unit = index;
  p.input_shape = model->chain()->output_shape(index - 1);
  p.output_shape = model->chain()->output_shape(index);
  p.head = model->specs()[index];
  const auto params = model->unit_and_head_parameters(index);
  p.param_bytes = tensor_bytes(params);
  // Static bytes between steps. Fused updates free each gradient during backward (the one being
  // applied shows in the measured transient instead); host optimizer state is outside the budget.
  p.grad_bytes = options_.train.fused_update ? 0 : p.param_bytes;
  const bool has_momentum = options_.train.optimizer == "sgd" && options_.train.momentum > 0;
  p.optimizer_bytes = options_.memory.optimizer_state == "host" ? 0
                      : options_.train.optimizer == "adam"      ? 2 * p.param_bytes
                      : has_momentum                            ? p.param_bytes
                                                                : 0;

  std::vector<int64_t> sizes;
  for (int64_t b : options_.batch_sizes)
    if (b <= options_.max_batch) sizes.push_back(b);
  if (sizes.empty()) sizes.push_back(options_.max_batch);
  const auto options = torch::TensorOptions(device_);
  // Measured under the limit in force (the run's budget, set by the "profile" phase). The
  // profile must also describe a batch the budget refuses, so the planner can name the smallest
  // budget that would work: that batch is measured again in an unbudgeted probe, named in the
  // log and the report, and counted in no phase's peak.
  // `primary`: the run's own thread count, whose plain step also gives the forward time and
  // the allocation trace.
  auto measure = [&](UnitMode mode, UnitModeProfile& fit, bool primary) {
    for (const int64_t b : sizes) {
      int64_t transient = 0;
      double best = std::numeric_limits<double>::infinity();
      std::optional<AllocationsAtPeak> traced;
      const std::string probe = "profile_unit" + std::to_string(index) + "_" + to_string(mode) +
                                (fit.threads > 0 ? "_threads" + std::to_string(fit.threads) : "") +
                                "_batch" + std::to_string(b);
      run_or_probe(meter, probe, [&] {
        unit->train();
        for (auto& t : params) t.mutable_grad() = at::Tensor();  // a refused try's leftovers
        best = std::numeric_limits<double>::infinity();
        const at::Tensor x = torch::randn(batch_shape(b, p.input_shape), options);
        const at::Tensor y = torch::randint(0, model->chain()->num_classes(), {b},
                                            options.dtype(torch::kLong));
        auto optimizer =
            make_optimizer(params, options_.train, options_.memory, options_.train.lr);
        // Warm: gradients and optimizer state now exist.
        unit_step(unit, head, *optimizer, x, y, nullptr, mode, &model->loss_terms(index));
        meter.reset_peak();
        const int64_t before = meter.current();
        for (int r = 0; r < options_.repeats; ++r) {
          Stopwatch watch;
          unit_step(unit, head, *optimizer, x, y, nullptr, mode, &model->loss_terms(index));
          best = std::min(best, watch.seconds());
          if (r == 0) transient = meter.peak() - before;
        }
        if (primary && options_.trace_allocations && mode == UnitMode::kPlain) {
          // Its own step, so the trace's bookkeeping slows none of the timed ones.
          AllocationTrace trace;
          unit_step(unit, head, *optimizer, x, y, nullptr, mode, &model->loss_terms(index));
          traced = trace.at_peak();
          traced->batch = b;
        }
        if (primary && mode == UnitMode::kPlain) {
          torch::NoGradGuard no_grad;
          unit->eval();
          Stopwatch watch;
          unit->forward(x);
          p.forward_seconds_per_sample = watch.seconds() / static_cast<double>(b);
          unit->train();
        }
        for (auto& t : params) t.mutable_grad() = at::Tensor();
      });
      fit.transient_peaks.emplace_back(b, transient);
      if (traced) p.allocations.push_back(std::move(*traced));
      fit.step_seconds.emplace_back(b, best / static_cast<double>(b));
    }
    std::sort(fit.step_seconds.begin(), fit.step_seconds.end());
    std::sort(fit.transient_peaks.begin(), fit.transient_peaks.end());
    const auto [intercept, slope] = fit_line(fit.transient_peaks);
    fit.transient_static = intercept;
    fit.transient_per_sample = slope;
  };
  UnitModeProfile plain;
  measure(UnitMode::kPlain, plain, true);
  p.step_seconds = plain.step_seconds;
  p.transient_peaks = plain.transient_peaks;
  p.transient_static = plain.transient_static;
  p.transient_per_sample = plain.transient_per_sample;
  if (options_.unit_modes) {
    for (const UnitMode mode : unit_modes_for(unit)) {
      if (mode == UnitMode::kPlain) continue;
      // Row-centric stripes add partial weight gradients, which fused updates cannot take.
      if (mode == UnitMode::kRowCentric && options_.train.fused_update) continue;
      UnitModeProfile fit;
      fit.mode = to_string(mode);
      measure(mode, fit, true);
      p.alternatives.push_back(std::move(fit));
    }
  }
  if (options_.fewer_threads && device_.is_cpu()) {
    for (const int64_t threads : thread_counts_below(at::get_num_threads())) {
      const IntraOpThreads fewer(threads);
      UnitModeProfile fit;
      fit.mode = to_string(UnitMode::kPlain);
      fit.threads = threads;
      measure(UnitMode::kPlain, fit, false);
      p.at_fewer_threads.push_back(std::move(fit));
    }
  }
  unit_snapshot.restore(*unit);
  head_snapshot.restore(*head);
  if (decoder_snapshot) decoder_snapshot->restore(*decoder);
  return p;
}

Profile Profiler::profile(LocalModel& model) {
  Stopwatch watch;
  Profile profile;
  profile.model = model->chain()->name();
  profile.device = device_.str();
  profile.num_classes = model->chain()->num_classes();
  profile.threads = at::get_num_threads();
  Progress progress("profiling", model->size(), "units/s", 10.0);
  for (int64_t i = 0; i < model->size(); ++i) {
    profile.units.push_back(profile_unit(model, i));
    progress.update(i + 1);
  }
  progress.finish();
  profile.seconds = watch.seconds();
  return profile;
}

UnitCost Profiler::unit_cost(UnitChain& chain, int64_t index) {
  MemoryMeter& meter = MemoryMeter::of(device_);
  auto& unit = chain->unit(index);
  std::optional<OnDeviceWhileAlive> on_device;
  if (options_.host_resident_model)
    on_device.emplace(std::vector<torch::nn::Module*>{unit.get()}, device_);
  const ModuleSnapshot snapshot(*unit);
  unit->train();
  UnitCost cost;
  cost.output_shape = chain->output_shape(index);
  const std::vector<int64_t> in_shape = chain->output_shape(index - 1);
  std::vector<std::pair<int64_t, int64_t>> peaks;
  for (int64_t b : {4, 16}) {
    int64_t transient = 0;
    double best = std::numeric_limits<double>::infinity();
    // Under the limit in force; a batch it refuses in a named probe (see profile_unit).
    run_or_probe(meter, "unit_cost" + std::to_string(index) + "_batch" + std::to_string(b), [&] {
      for (auto& t : unit->parameters()) t.mutable_grad() = at::Tensor();
      best = std::numeric_limits<double>::infinity();
      const at::Tensor x = torch::randn(batch_shape(b, in_shape), torch::TensorOptions(device_));
      auto step = [&] {
        at::Tensor out = unit->forward(x);
        out.square().mean().backward();
      };
      step();
      meter.reset_peak();
      const int64_t before = meter.current();
      for (int r = 0; r < options_.repeats; ++r) {
        Stopwatch watch;
        step();
        best = std::min(best, watch.seconds());
      }
      transient = meter.peak() - before;
      for (auto& t : unit->parameters()) t.mutable_grad() = at::Tensor();
    });
    peaks.emplace_back(b, transient);
    cost.seconds_per_sample = best / static_cast<double>(b);
  }
  cost.activation_bytes_per_sample = fit_line(peaks).second;
  snapshot.restore(*unit);
  return cost;
}

double Profiler::head_seconds_per_sample(const std::vector<int64_t>& input_shape,
                                         const AuxHeadSpec& spec, int64_t num_classes) {
  constexpr int64_t kBatch = 16;
  double best = std::numeric_limits<double>::infinity();
  // Under the limit in force; a head the budget refuses is timed in a named probe.
  run_or_probe(MemoryMeter::of(device_), "head_seconds_" + spec.family + std::to_string(spec.width) + "_pool" +
                                            std::to_string(spec.pool), [&] {
    best = std::numeric_limits<double>::infinity();
    torch::nn::Sequential head = make_aux_head(input_shape, spec, num_classes);
    head->to(device_);
    const at::Tensor x =
        torch::randn(batch_shape(kBatch, input_shape), torch::TensorOptions(device_));
    auto step = [&] { head->forward(x).square().mean().backward(); };
    step();
    for (int r = 0; r < options_.repeats; ++r) {
      Stopwatch watch;
      step();
      best = std::min(best, watch.seconds());
    }
  });
  return best / kBatch;
}

std::vector<AuxHeadSpec> choose_head_specs(const Config& config, UnitChain& chain,
                                           Profiler& profiler) {
  const int64_t n = chain->size();
  if (config.neuroflux.aux != "adaptive") return classic_head_specs(config, *chain);
  std::vector<AuxHeadSpec> specs(n);
  for (int64_t i = 0; i + 1 < n; ++i) {
    const UnitCost cost = profiler.unit_cost(chain, i);
    specs[i] = choose_adaptive_head(
        cost, config.neuroflux.aux_memory_fraction, config.neuroflux.aux_compute_fraction,
        [&](const AuxHeadSpec& spec) {
          return profiler.head_seconds_per_sample(cost.output_shape, spec, chain->num_classes());
        });
    specs[i].batch_norm = config.model.batch_norm;
  }
  specs.back() = AuxHeadSpec{1, 0, true};
  return specs;
}

}  // namespace neuroflux
