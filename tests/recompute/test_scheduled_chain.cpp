// Training through a checkpoint / offload schedule gives plain backprop's loss and gradients,
// and the schedule's predicted peak matches the meter.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/models/model_zoo.h"
#include "neuroflux/models/module_snapshot.h"
#include "neuroflux/models/sequential_stage.h"
#include "neuroflux/optim/optim.h"
#include "neuroflux/recompute/scheduled_chain.h"
#include "schedule_test_util.h"

using namespace neuroflux;
using neuroflux::test::checkpoint;
using neuroflux::test::store;

namespace {


// Five conv units with batch norm and dropout (so RNG and running statistics matter).
UnitChain small_chain() {
  torch::manual_seed(3);
  torch::nn::Sequential units;
  int64_t channels = 3;
  for (int i = 0; i < 5; ++i) {
    const int64_t out = 6 + 2 * i;
    units->push_back(as_stage(torch::nn::Sequential(
        torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, out, 3).padding(1)),
        torch::nn::BatchNorm2d(out), torch::nn::ReLU(), torch::nn::Dropout(0.2))));
    channels = out;
  }
  torch::nn::Sequential classifier(torch::nn::AdaptiveAvgPool2d(1), torch::nn::Flatten(),
                                   torch::nn::Linear(channels, 5));
  return chain_from_sequential(units, {3, 12, 12}, 5, classifier);
}

/// vgg11 at width 0.25 on one-channel `side` x `side` images, seeded, in training mode.
UnitChain quarter_vgg11(int64_t side) {
  ModelConfig m;
  m.name = "vgg11";
  m.width = 0.25;
  torch::manual_seed(1);
  UnitChain model = build_model(m, {1, side, side}, 10);
  model->train();
  return model;
}

CheckpointSchedule schedule_of(std::vector<ScheduleNode> nodes, std::string strategy) {
  CheckpointSchedule s;
  s.strategy = std::move(strategy);
  s.nodes = std::move(nodes);
  return s;
}

struct StepResult {
  double loss = 0;
  std::vector<at::Tensor> grads, buffers;
  at::Tensor rng_after;
};

StepResult step(UnitChain& model, const at::Tensor& x, const at::Tensor& y,
                const std::function<at::Tensor(const at::Tensor&)>& forward) {
  for (auto& p : model->parameters()) p.mutable_grad() = at::Tensor();
  torch::manual_seed(42);
  const at::Tensor loss = torch::cross_entropy_loss(forward(x), y);
  loss.backward();
  StepResult r;
  r.loss = loss.item<double>();
  for (const auto& p : model->parameters()) r.grads.push_back(p.grad().clone());
  for (const auto& b : model->buffers()) r.buffers.push_back(b.clone());
  r.rng_after = torch::rand({4});   // the random stream continues where plain training's does
  return r;
}

void check_same(const StepResult& a, const StepResult& b) {
  CHECK(a.loss == Approx(b.loss).epsilon(1e-6));
  REQUIRE(a.grads.size() == b.grads.size());
  for (size_t i = 0; i < a.grads.size(); ++i) {
    INFO("parameter " << i);
    CHECK(torch::allclose(a.grads[i], b.grads[i], 1e-4, 1e-6));
  }
  REQUIRE(a.buffers.size() == b.buffers.size());
  for (size_t i = 0; i < a.buffers.size(); ++i) {
    INFO("buffer " << i);
    CHECK(torch::allclose(a.buffers[i], b.buffers[i], 1e-5, 1e-7));
  }
  CHECK(torch::equal(a.rng_after, b.rng_after));
}

}  // namespace

TEST_CASE("checkpointed and offloaded schedules give plain backprop's loss and gradients",
          "[recompute][unit]") {
  UnitChain model = small_chain();
  model->train();
  const ModuleSnapshot initial(*model);
  const at::Tensor x = torch::randn({6, 3, 12, 12});
  const at::Tensor y = torch::randint(0, 5, {6});
  const StepResult plain = step(model, x, y, [&](const at::Tensor& in) { return model->forward(in); });

  const ChainCosts costs = measure_chain_costs(model, 6, c10::Device(c10::kCPU), 0);
  REQUIRE(costs.size() == 6);
  std::vector<CheckpointSchedule> schedules{
      sqrt_schedule(costs),
      // Nested: the recompute of [0, 3) itself checkpoints [1, 3).
      schedule_of({checkpoint(0, 3, {store(0), checkpoint(1, 3, {store(1), store(2)})}),
                   checkpoint(3, 5, {store(3), store(4)}), store(5)},
                  "checkpoint"),
      // Every unit its own segment, the middle ones offloaded.
      schedule_of({checkpoint(0, 1, {store(0)}), ScheduleNode::checkpoint(1, 2, {store(1)}, true),
                   ScheduleNode::checkpoint(2, 3, {store(2)}, true), checkpoint(3, 4, {store(3)}),
                   store(4), store(5)},
                  "offload")};
  const auto tight = optimal_schedule(costs, store_all_schedule(costs).predicted_activation_peak / 2, false);
  REQUIRE(tight.has_value());
  CHECK(tight->recomputed_stages() > 0);
  schedules.push_back(*tight);

  for (const CheckpointSchedule& schedule : schedules) {
    INFO("schedule " << schedule.describe());
    initial.restore(*model);
    auto store = std::make_shared<OffloadStore>(c10::Device(c10::kCPU));
    ScheduledChain chain(model, schedule, store);
    const StepResult got = step(model, x, y, [&](const at::Tensor& in) { return chain.forward(in); });
    check_same(got, plain);
    if (schedule.strategy == "offload") {
      CHECK(chain.offload_stats().transfers == 2);
      CHECK(chain.offload_stats().offloaded_bytes == 6 * (6 + 8) * 12 * 12 * 4);
      // A second step reuses the store's slots and still matches.
      initial.restore(*model);
      check_same(step(model, x, y, [&](const at::Tensor& in) { return chain.forward(in); }), plain);
    }
  }
}

TEST_CASE("a schedule's predicted peak is within 20% of the measured one", "[recompute][unit]") {
  UnitChain model = quarter_vgg11(32);
  const c10::Device cpu(c10::kCPU);
  MemoryMeter& meter = MemoryMeter::cpu();
  const int64_t batch = 32;
  const ChainCosts costs = measure_chain_costs(model, batch, cpu, 0);
  const int64_t all = store_all_schedule(costs).predicted_activation_peak;
  const CheckpointSchedule least = least_memory_schedule(costs, false);
  std::vector<CheckpointSchedule> schedules{store_all_schedule(costs), sqrt_schedule(costs), least};
  const auto between = optimal_schedule(costs, (all + least.predicted_activation_peak) / 2, false);
  REQUIRE(between.has_value());
  schedules.push_back(*between);
  const at::Tensor x = torch::randn({batch, 1, 32, 32});
  const at::Tensor y = torch::randint(0, 10, {batch});
  for (const CheckpointSchedule& schedule : schedules) {
    ScheduledChain chain(model, schedule);
    // Gradients exist before the measured step, as they do in training.
    torch::cross_entropy_loss(chain.forward(x), y).backward();
    meter.reset_peak();
    torch::cross_entropy_loss(chain.forward(x), y).backward();
    const int64_t measured = meter.peak();
    // The meter also sees the other live tensors of this process; the schedule's static part is
    // parameters, gradients and the batch, all live here.
    const int64_t baseline = meter.current();
    const int64_t predicted = schedule.predicted_activation_peak + baseline;
    INFO(schedule.describe() << ": predicted " << predicted << ", measured " << measured
                             << ", baseline " << baseline);
    CHECK(std::abs(static_cast<double>(predicted - measured)) <= 0.2 * measured);
  }
  for (auto& p : model->parameters()) p.mutable_grad() = at::Tensor();
}

TEST_CASE("an offloaded tensor waited for is held by its owner alone", "[recompute][unit]") {
  // The schedule counts a segment's offloaded input as freed once the segment has run forward:
  // the segment waits for the copy, after which the store must hold no reference to it.
  OffloadStore store(c10::Device(c10::kCPU));
  const at::Tensor x = torch::randn({4, 3, 8, 8});
  const int64_t slot = store.offload(x);
  store.wait_offloaded(slot);
  CHECK(x.use_count() == 1);
  CHECK(torch::equal(store.fetch(slot), x));
}

TEST_CASE("with fused updates a checkpointed segment frees each gradient inside its backward",
          "[recompute][unit]") {
  // vgg11 at width 0.25 and batch 2: weights (2.3 MB) outweigh activations, as at a memory floor.
  UnitChain model = quarter_vgg11(28);
  const c10::Device cpu(c10::kCPU);
  MemoryMeter& meter = MemoryMeter::cpu();
  int64_t param_bytes = 0, largest = 0;
  for (const at::Tensor& p : model->parameters()) {
    param_bytes += static_cast<int64_t>(p.nbytes());
    largest = std::max<int64_t>(largest, static_cast<int64_t>(p.nbytes()));
  }

  // The costs count gradients as state only where they outlive backward.
  const ChainCosts kept = measure_chain_costs(model, 2, cpu, 1, 2, false);
  const ChainCosts freed = measure_chain_costs(model, 2, cpu, 1, 2, true);
  CHECK(kept.state_bytes == 3 * param_bytes);
  CHECK(freed.state_bytes == 2 * param_bytes);
  for (const at::Tensor& p : model->parameters()) CHECK_FALSE(p.grad().defined());
  for (int64_t s = 0; s < model->size(); ++s) {
    INFO("stage " << s);
    const auto params = model->unit_parameters(s, s + 1, false);
    int64_t stage_bytes = 0;
    for (const at::Tensor& p : params) stage_bytes += static_cast<int64_t>(p.nbytes());
    // Freed, the stage's own gradients are allocated inside the measured backward.
    CHECK(freed.stages[s].backward_transient >= stage_bytes);
  }

  // One checkpointed segment over every unit: the rise of a step above what is live before it.
  std::vector<ScheduleNode> inner;
  for (int64_t s = 0; s < model->size(); ++s) inner.push_back(store(s));
  const CheckpointSchedule one_segment =
      schedule_of({checkpoint(0, model->size(), inner), store(model->size())}, "checkpoint");
  const at::Tensor x = torch::randn({2, 1, 28, 28});
  const at::Tensor y = torch::randint(0, 10, {2});
  auto rise_of_step = [&](bool fused) {
    TrainConfig train;
    train.fused_update = fused;
    MemoryConfig memory;
    memory.optimizer_state = "host";  // only weights and gradients on the meter
    auto optimizer = make_optimizer(model->parameters(), train, memory, 0.01);
    ScheduledChain chain(model, one_segment);
    auto step = [&] {
      optimizer->zero_grad();
      for (at::Tensor& p : model->parameters()) p.mutable_grad() = at::Tensor();
      torch::cross_entropy_loss(chain.forward(x), y).backward();
      optimizer->step();
      for (at::Tensor& p : model->parameters()) p.mutable_grad() = at::Tensor();
    };
    step();  // the momentum buffers exist from here on (on the host)
    const int64_t before = meter.current();
    meter.reset_peak();
    step();
    return meter.peak() - before;
  };
  const int64_t all_gradients = rise_of_step(false);
  const int64_t fused = rise_of_step(true);
  INFO("rise of a checkpointed step: " << all_gradients << " B with every gradient alive at "
       "once, " << fused << " B fused; gradients " << param_bytes << " B, largest " << largest);
  // Fused, the segment's gradients never coexist, so the step's peak drops by a large share of
  // them. Measured: 1,179,688 of 2,317,992 B (the peak then falls inside a deep layer's
  // backward, whose transient holds two weight-sized buffers). Returning them from the segment's
  // backward all at once, as torch::autograd::grad did, saved 5,160 B.
  CHECK(all_gradients - fused >= param_bytes / 3);
}
