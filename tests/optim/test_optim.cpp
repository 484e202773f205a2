// Optimizers and schedules from the config, and the memory-floor options (memory.optimizer_state
// "host", train.fused_update): the same weights as LibTorch's own SGD / Adam, and the bytes they
// are meant to save, measured with the MemoryMeter.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "config/config_test_util.h"
#include "neuroflux/distributed/communicator.h"
#include "neuroflux/distributed/grad_reducer.h"
#include "neuroflux/local/local_model.h"
#include "neuroflux/local/unit_step.h"
#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/models/model_zoo.h"
#include "neuroflux/optim/optim.h"
#include "neuroflux/optim/parameterwise_optimizer.h"
#include "neuroflux/profile/profiler.h"
#include "neuroflux/util/errors.h"

using namespace neuroflux;

TEST_CASE("schedules: cosine from the base rate, step decay, constant", "[optim][unit]") {
  TrainConfig config;
  config.schedule = "cosine";
  CHECK(scheduled_lr(config, 0.1, 0, 4) == Approx(0.1));
  CHECK(scheduled_lr(config, 0.1, 2, 4) == Approx(0.05));
  const double pi = std::acos(-1.0);
  CHECK(scheduled_lr(config, 0.1, 3, 4) == Approx(0.05 * (1 + std::cos(pi * 0.75))));
  CHECK(scheduled_lr(config, 0.1, 0, 1) == Approx(0.1));  // one epoch: no decay

  config.schedule = "step";
  config.step_size = 2;
  config.gamma = 0.1;
  CHECK(scheduled_lr(config, 0.1, 1, 6) == Approx(0.1));
  CHECK(scheduled_lr(config, 0.1, 2, 6) == Approx(0.01));
  CHECK(scheduled_lr(config, 0.1, 5, 6) == Approx(0.001));
  config.step_size = 0;  // a third of the epochs
  CHECK(scheduled_lr(config, 0.1, 3, 9) == Approx(0.01));

  config.schedule = "constant";
  CHECK(scheduled_lr(config, 0.1, 7, 8) == Approx(0.1));
}

TEST_CASE("warm-up: a linear ramp per batch, then cosine over the remaining epochs",
          "[optim][unit]") {
  TrainConfig config;
  config.schedule = "cosine";
  config.warmup_epochs = 1;
  const double pi = std::acos(-1.0);
  // 3 epochs of 4 batches, warm-up 1 epoch: batch k of epoch 0 runs at 0.1 (k + 1) / 4.
  CHECK(scheduled_lr(config, 0.1, 0, 3, 0, 4) == Approx(0.025));
  CHECK(scheduled_lr(config, 0.1, 0, 3, 2, 4) == Approx(0.075));
  CHECK(scheduled_lr(config, 0.1, 0, 3, 3, 4) == Approx(0.1));
  // Then cosine over the 2 epochs left: t = 1 is its start, t = 2.5 three quarters through.
  CHECK(scheduled_lr(config, 0.1, 1, 3, 0, 4) == Approx(0.1));
  CHECK(scheduled_lr(config, 0.1, 2, 3, 0, 4) == Approx(0.05));
  CHECK(scheduled_lr(config, 0.1, 2, 3, 2, 4) == Approx(0.05 * (1 - std::sqrt(0.5))));
  // A fractional warm-up: half an epoch of 4 batches is 2 batches at 0.05 and 0.1; then t = 1.5
  // of 2 epochs is two thirds of the 1.5 cosine epochs: 0.05 (1 + cos(2 pi / 3)) = 0.025.
  config.warmup_epochs = 0.5;
  CHECK(scheduled_lr(config, 0.1, 0, 2, 0, 4) == Approx(0.05));
  CHECK(scheduled_lr(config, 0.1, 0, 2, 1, 4) == Approx(0.1));
  CHECK(scheduled_lr(config, 0.1, 0, 2, 2, 4) == Approx(0.1));
  CHECK(scheduled_lr(config, 0.1, 1, 2, 2, 4) == Approx(0.025));
  // A block of 2 epochs under a 3-epoch warm-up warms up over 1 (half its epochs).
  config.warmup_epochs = 3;
  CHECK(warmup_epochs_for(config, 2) == 1.0);
  CHECK(scheduled_lr(config, 0.1, 0, 2, 0, 2) == Approx(0.05));
  CHECK(scheduled_lr(config, 0.1, 1, 2, 0, 2) == Approx(0.1));
  // Step and constant keep their epoch rates once warm.
  config.warmup_epochs = 1;
  config.schedule = "step";
  config.step_size = 2;
  CHECK(scheduled_lr(config, 0.1, 0, 6, 1, 2) == Approx(0.1));
  CHECK(scheduled_lr(config, 0.1, 2, 6, 1, 2) == Approx(0.01));
  // No warm-up: the epoch rate for every batch, as before warm-up existed.
  config.schedule = "cosine";
  config.warmup_epochs = 0;
  CHECK(scheduled_lr(config, 0.1, 2, 4, 3, 4) == scheduled_lr(config, 0.1, 2, 4));
}

TEST_CASE("BatchLrSchedule sets each batch's rate, or each epoch's without warm-up",
          "[optim][unit]") {
  TrainConfig config;
  config.warmup_epochs = 1;
  std::vector<double> set;
  // 10 samples in batches of 4: 3 batches per epoch (the last one partial).
  BatchLrSchedule schedule(config, 0.3, 3, 10, 4, [&set](double lr) { set.push_back(lr); });
  CHECK(schedule.start_epoch(0) == Approx(0.1));
  for (int b = 0; b < 3; ++b) schedule.before_batch();
  REQUIRE(set.size() == 4);  // the epoch's start, then each batch
  CHECK(set[1] == Approx(0.1));
  CHECK(set[2] == Approx(0.2));
  CHECK(set[3] == Approx(0.3));
  schedule.start_epoch(2);
  schedule.before_batch();
  CHECK(set.back() == Approx(0.15));  // half-way through the cosine's 2 epochs
  config.warmup_epochs = 0;
  set.clear();
  BatchLrSchedule plain(config, 0.3, 3, 10, 4, [&set](double lr) { set.push_back(lr); });
  plain.start_epoch(1);
  for (int b = 0; b < 3; ++b) plain.before_batch();
  CHECK(set.size() == 1);
}

TEST_CASE("the optimizer steps at the rate set on it", "[optim][unit]") {
  TrainConfig config;
  config.optimizer = "sgd";
  config.momentum = 0;
  config.weight_decay = 0;
  at::Tensor w = torch::ones({3}, torch::requires_grad());
  auto optimizer = make_optimizer({w}, config, MemoryConfig{}, 0.5);
  set_learning_rate(*optimizer, 0.25);
  w.sum().backward();  // gradient 1 everywhere
  optimizer->step();
  CHECK(torch::allclose(w.detach(), torch::full({3}, 0.75)));

  config.optimizer = "adam";
  at::Tensor v = torch::zeros({2}, torch::requires_grad());
  auto adam = make_optimizer({v}, config, MemoryConfig{}, 0.1);
  v.sum().backward();
  adam->step();  // Adam's first step moves every weight by the rate, against the gradient's sign
  CHECK(torch::allclose(v.detach(), torch::full({2}, -0.1), 1e-4, 1e-6));
}


namespace {

using OptimizerPtr = std::unique_ptr<torch::optim::Optimizer>;
using MakeOptimizer = std::function<OptimizerPtr(std::vector<at::Tensor>)>;

/// A small conv net with batch norm and a classifier: every kind of parameter the zoo has.
torch::nn::Sequential small_conv_net() {
  return torch::nn::Sequential(
      torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 8, 3).padding(1)),
      torch::nn::BatchNorm2d(8), torch::nn::ReLU(),
      torch::nn::Conv2d(torch::nn::Conv2dOptions(8, 16, 3).padding(1).stride(2)),
      torch::nn::ReLU(), torch::nn::AdaptiveAvgPool2d(1), torch::nn::Flatten(),
      torch::nn::Linear(16, 10));
}

torch::nn::Sequential cloned_net(const torch::nn::Sequential& net) {
  return torch::nn::Sequential(std::dynamic_pointer_cast<torch::nn::SequentialImpl>(net->clone()));
}

/// `steps` training steps on fixed random batches (batch i seeded by i, from `first`);
/// `before_step(i)` runs before step i.
void steps_on_fixed_batches(torch::nn::Sequential& net, torch::optim::Optimizer& optimizer, int steps,
           const std::function<void(int)>& before_step = nullptr, int first = 0) {
  for (int i = first; i < first + steps; ++i) {
    torch::manual_seed(100 + i);
    const at::Tensor x = torch::randn({4, 3, 8, 8});
    const at::Tensor y = torch::randint(0, 10, {4}, torch::kLong);
    if (before_step) before_step(i);
    optimizer.zero_grad();
    torch::cross_entropy_loss(net->forward(x), y).backward();
    optimizer.step();
  }
}

/// Largest |a - b| over all parameters, relative to the largest |a|.
double relative_difference(const torch::nn::Sequential& a, const torch::nn::Sequential& b) {
  const auto pa = a->parameters(), pb = b->parameters();
  REQUIRE(pa.size() == pb.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < pa.size(); ++i) {
    diff = std::max(diff, (pa[i] - pb[i]).abs().max().item<double>());
    scale = std::max(scale, pa[i].abs().max().item<double>());
  }
  return diff / scale;
}

bool weights_equal(const torch::nn::Sequential& a, const torch::nn::Sequential& b) {
  const auto pa = a->parameters(), pb = b->parameters();
  for (size_t i = 0; i < pa.size(); ++i)
    if (!torch::equal(pa[i], pb[i])) return false;
  return true;
}

/// Trains two copies of one net, one with `reference` and one with `candidate`, and returns the
/// relative difference of their weights after `steps` steps.
double train_both(const MakeOptimizer& reference, const MakeOptimizer& candidate, int steps,
                  const std::function<void(torch::optim::Optimizer&, int)>& before_step =
                      nullptr) {
  torch::manual_seed(1);
  torch::nn::Sequential a = small_conv_net();
  torch::nn::Sequential b = cloned_net(a);
  REQUIRE(weights_equal(a, b));
  auto opt_a = reference(a->parameters());
  auto opt_b = candidate(b->parameters());
  steps_on_fixed_batches(a, *opt_a, steps, [&](int i) { if (before_step) before_step(*opt_a, i); });
  steps_on_fixed_batches(b, *opt_b, steps, [&](int i) { if (before_step) before_step(*opt_b, i); });
  return relative_difference(a, b);
}

const ParameterwiseOptions kStep{/*host_state=*/false, /*fused=*/false};
const ParameterwiseOptions kFused{/*host_state=*/false, /*fused=*/true};
const ParameterwiseOptions kHost{/*host_state=*/true, /*fused=*/false};
const ParameterwiseOptions kFusedHost{/*host_state=*/true, /*fused=*/true};

std::string mode_name(const ParameterwiseOptions& how) {
  return std::string(how.fused ? "fused" : "step()") + (how.host_state ? ", host state" : "");
}

int64_t total_bytes(const std::vector<at::Tensor>& tensors) {
  int64_t bytes = 0;
  for (const auto& t : tensors) bytes += static_cast<int64_t>(t.nbytes());
  return bytes;
}

/// Communicates nothing: enough to build a GradReducer, which unit_step must refuse first.
class NoCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 2; }
  double timeout_seconds() const override { return 1; }
  std::unique_ptr<PendingOp> all_reduce_sum_async(at::Tensor&) override { return nullptr; }
  void broadcast(at::Tensor&, int) override {}
  void send(const at::Tensor&, int, int) override {}
  std::unique_ptr<PendingOp> recv_async(at::Tensor&, int, int) override { return nullptr; }
  void barrier() override {}
};

}  // namespace

TEST_CASE("per-parameter SGD equals torch::optim::SGD bitwise, in step(), fused, with host state",
          "[optim][unit]") {
  struct Case {
    const char* name;
    torch::optim::SGDOptions options;
  };
  const std::vector<Case> cases = {
      {"momentum", torch::optim::SGDOptions(0.1).momentum(0.9)},
      {"Nesterov", torch::optim::SGDOptions(0.1).momentum(0.9).nesterov(true)},
      {"Nesterov + weight decay",
       torch::optim::SGDOptions(0.1).momentum(0.9).nesterov(true).weight_decay(5e-3)},
      {"momentum + dampening + weight decay",
       torch::optim::SGDOptions(0.05).momentum(0.8).dampening(0.1).weight_decay(1e-3)},
      {"plain, weight decay", torch::optim::SGDOptions(0.1).weight_decay(1e-3)},
  };
  for (const Case& c : cases) {
    for (const ParameterwiseOptions& how : {kStep, kFused, kHost, kFusedHost}) {
      INFO(c.name << ", " << mode_name(how));
      const double diff = train_both(
          [&](std::vector<at::Tensor> p) {
            return std::make_unique<torch::optim::SGD>(std::move(p), c.options);
          },
          [&](std::vector<at::Tensor> p) {
            return std::make_unique<ParameterwiseOptimizer>(std::move(p), c.options, how);
          },
          5);
      // In-place sums run the same kernels as torch's out-of-place ones.
      CHECK(diff == 0);
    }
  }
}

TEST_CASE("per-parameter Adam equals torch::optim::Adam bitwise, in step(), fused, with host state",
          "[optim][unit]") {
  for (const double weight_decay : {0.0, 1e-2}) {
    const auto options = torch::optim::AdamOptions(1e-2).weight_decay(weight_decay);
    for (const ParameterwiseOptions& how : {kStep, kFused, kHost, kFusedHost}) {
      INFO("weight decay " << weight_decay << ", " << mode_name(how));
      const double diff = train_both(
          [&](std::vector<at::Tensor> p) {
            return std::make_unique<torch::optim::Adam>(std::move(p), options);
          },
          [&](std::vector<at::Tensor> p) {
            return std::make_unique<ParameterwiseOptimizer>(std::move(p), options, how);
          },
          5);
      // In-place sums run the same kernels as torch's out-of-place ones.
      CHECK(diff == 0);
    }
  }
}

TEST_CASE("make_optimizer builds the per-parameter optimizer with the run's options",
          "[optim][unit]") {
  at::Tensor w = torch::ones({3}, torch::requires_grad());
  TrainConfig train;
  MemoryConfig memory;
  auto plain = make_optimizer({w}, train, memory, 0.1);
  auto* sgd = dynamic_cast<ParameterwiseOptimizer*>(plain.get());
  REQUIRE(sgd);
  CHECK(sgd->rule() == ParameterwiseOptimizer::Rule::kSgd);
  CHECK_FALSE(sgd->host_state());
  CHECK_FALSE(sgd->fused());
  plain.reset();
  train.optimizer = "adam";
  memory.optimizer_state = "host";
  auto host = make_optimizer({w}, train, memory, 0.1);
  auto* own = dynamic_cast<ParameterwiseOptimizer*>(host.get());
  REQUIRE(own);
  CHECK(own->rule() == ParameterwiseOptimizer::Rule::kAdam);
  CHECK(own->host_state());
  CHECK_FALSE(own->fused());
  CHECK_FALSE(updates_in_backward(*host));
  host.reset();
  train.optimizer = "sgd";
  train.fused_update = true;
  memory.optimizer_state = "device";
  auto fused = make_optimizer({w}, train, memory, 0.1);
  REQUIRE(dynamic_cast<ParameterwiseOptimizer*>(fused.get()));
  CHECK(updates_in_backward(*fused));
}

TEST_CASE("an update holds at most one weight-sized temporary on the device, none fused",
          "[optim][unit]") {
  // One 512 x 512 linear layer (1 MiB of weight) on a single sample: the update's temporaries are
  // the only weight-sized allocations besides the gradient, so the meter sees them plainly.
  MemoryMeter& meter = MemoryMeter::cpu();
  torch::manual_seed(3);
  const at::Tensor x = torch::randn({1, 512});
  torch::nn::Linear layer(512, 512);
  const int64_t weight_bytes = static_cast<int64_t>(layer->weight.nbytes());
  const int64_t slack = 16 * 1024;  // the bias's share, the loss, a few scalars
  // Bytes allocated above what was live when `what` began.
  auto rise = [&](const std::function<void()>& what) {
    const int64_t before = meter.current();
    meter.reset_peak();
    what();
    return meter.peak() - before;
  };
  auto backward = [&] { layer->forward(x).square().sum().backward(); };
  for (const char* rule : {"sgd", "adam"}) {
    INFO(rule);
    TrainConfig train;  // SGD: Nesterov momentum and weight decay, the defaults
    train.optimizer = rule;
    train.weight_decay = 5e-4;
    auto optimizer = make_optimizer(layer->parameters(), train, MemoryConfig{}, 0.01);
    for (int i = 0; i < 2; ++i) {  // the first step makes the state; the second is measured
      optimizer->zero_grad();
      backward();
      const int64_t in_step = rise([&] { optimizer->step(); });
      if (i == 1) {
        INFO("step() allocated " << in_step << " bytes, weight " << weight_bytes);
        CHECK(in_step <= weight_bytes + slack);
        CHECK(in_step >= weight_bytes);  // the scratch keeps the gradient as it was
      }
    }
    // The reference: torch's SGD holds two temporaries (the weight-decay and Nesterov sums).
    if (std::string(rule) == "sgd") {
      torch::optim::SGD reference(
          layer->parameters(),
          torch::optim::SGDOptions(0.01).momentum(0.9).nesterov(true).weight_decay(5e-4));
      for (int i = 0; i < 2; ++i) {
        reference.zero_grad();
        backward();
        const int64_t in_step = rise([&] { reference.step(); });
        if (i == 1) CHECK(in_step >= 2 * weight_bytes);
      }
    }
    // Fused: the update inside backward allocates nothing beyond the gradient it consumes.
    train.fused_update = true;
    optimizer.reset();
    auto fused = make_optimizer(layer->parameters(), train, MemoryConfig{}, 0.01);
    for (int i = 0; i < 2; ++i) {
      fused->zero_grad();
      const int64_t in_backward = rise(backward);
      CHECK_FALSE(layer->weight.grad().defined());
      if (i == 1) {
        INFO("backward with fused updates allocated " << in_backward << " bytes");
        CHECK(in_backward <= weight_bytes + slack);
      }
    }
  }
}

TEST_CASE("fused updates follow set_learning_rate", "[optim][unit]") {
  const auto options = torch::optim::SGDOptions(0.1).momentum(0.9).nesterov(true);
  auto torch_sgd = [&](std::vector<at::Tensor> p) {
    return std::make_unique<torch::optim::SGD>(std::move(p), options);
  };
  auto fused_sgd = [&](std::vector<at::Tensor> p) {
    return std::make_unique<ParameterwiseOptimizer>(std::move(p), options, kFused);
  };
  // The rate drops to a tenth before the third step, on both sides.
  auto lower_rate = [](torch::optim::Optimizer& opt, int step) {
    if (step == 2) set_learning_rate(opt, 0.01);
  };
  CHECK(train_both(torch_sgd, fused_sgd, 4, lower_rate) <= 1e-6);
  // And it matters: against a reference that keeps the rate, the weights differ.
  CHECK(train_both(torch_sgd, fused_sgd, 4, [&](torch::optim::Optimizer& opt, int step) {
          if (dynamic_cast<ParameterwiseOptimizer*>(&opt)) lower_rate(opt, step);
        }) > 1e-4);
}

TEST_CASE("fused: backward updates the weights and frees the gradients; hooks go with the "
          "optimizer",
          "[optim][unit]") {
  torch::manual_seed(2);
  torch::nn::Sequential net = small_conv_net();
  const at::Tensor x = torch::randn({4, 3, 8, 8});
  const at::Tensor y = torch::randint(0, 10, {4}, torch::kLong);
  // The reference: torch's SGD, one step after backward.
  torch::nn::Sequential reference = cloned_net(net);
  const auto options = torch::optim::SGDOptions(0.1).momentum(0.9);
  torch::optim::SGD sgd(reference->parameters(), options);
  torch::cross_entropy_loss(reference->forward(x), y).backward();
  sgd.step();
  {
    auto optimizer = std::make_unique<ParameterwiseOptimizer>(net->parameters(), options, kFused);
    torch::cross_entropy_loss(net->forward(x), y).backward();
    // Backward alone took the step (the weights equal the reference's) and left no gradient.
    CHECK(weights_equal(net, reference));
    const auto params = net->parameters();
    for (const auto& p : params) CHECK_FALSE(p.grad().defined());
    CHECK(optimizer->state_bytes() == total_bytes(params));  // one momentum buffer each
    optimizer->step();  // nothing left to do
    CHECK(weights_equal(net, reference));
  }
  // The optimizer is gone: backward only accumulates gradients again.
  std::vector<at::Tensor> after;
  for (const auto& p : net->parameters()) after.push_back(p.detach().clone());
  torch::cross_entropy_loss(net->forward(x), y).backward();
  const auto params = net->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    CHECK(params[i].grad().defined());
    CHECK(torch::equal(params[i].detach(), after[i]));
  }
}

TEST_CASE("host state and torch's optimizers read each other's saved state", "[optim][unit]") {
  // Three steps, save, three more in a fresh optimizer loaded from the archive: the same
  // weights as six steps without a break, across the two implementations both ways. Loaded
  // host state lives outside the budget like state the optimizer made itself.
  MemoryMeter& meter = MemoryMeter::cpu();
  for (const bool adam : {false, true}) {
    for (const bool to_host : {false, true}) {
      INFO((adam ? "adam" : "sgd") << (to_host ? ", torch's -> host state"
                                               : ", host state -> torch's"));
      TrainConfig train;
      train.optimizer = adam ? "adam" : "sgd";
      MemoryConfig device, host;
      host.optimizer_state = "host";
      torch::manual_seed(1);
      torch::nn::Sequential a = small_conv_net();
      torch::nn::Sequential b = cloned_net(a);
      auto straight = make_optimizer(a->parameters(), train, device, 0.05);
      steps_on_fixed_batches(a, *straight, 6);

      auto first = make_optimizer(b->parameters(), train, to_host ? device : host, 0.05);
      steps_on_fixed_batches(b, *first, 3);
      std::stringstream bytes;
      {
        torch::serialize::OutputArchive out;
        first->save(out);
        out.save_to(bytes);
      }
      first.reset();
      auto second = make_optimizer(b->parameters(), train, to_host ? host : device, 0.05);
      const int64_t before_load = meter.current();
      {
        torch::serialize::InputArchive in;
        in.load_from(bytes);
        second->load(in);
      }
      const int64_t state = (adam ? 2 : 1) * total_bytes(b->parameters());
      CHECK(meter.current() - before_load == (to_host ? 0 : state));
      steps_on_fixed_batches(b, *second, 3, nullptr, 3);
      CHECK(relative_difference(a, b) <= 1e-6);
    }
  }
}

TEST_CASE("fused updates lower a step's peak by about the gradients less one layer's",
          "[optim][unit]") {
  // Weight-heavy on purpose (six 64-channel 3x3 convs on 8x8 maps, batch 2): the gradients
  // (6 x 144 KiB) outweigh the activations, as they do for the deep units of a small-batch block.
  MemoryMeter& meter = MemoryMeter::cpu();
  auto peak_of_step = [&](bool fused, int64_t* grad_bytes, int64_t* largest) {
    torch::manual_seed(4);
    const at::Tensor x = torch::randn({2, 64, 8, 8});
    const at::Tensor y = torch::randint(0, 10, {2}, torch::kLong);
    const int64_t base = meter.current();
    torch::nn::Sequential net;
    for (int i = 0; i < 6; ++i) {
      net->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(64, 64, 3).padding(1)));
      net->push_back(torch::nn::ReLU());
    }
    net->push_back(torch::nn::AdaptiveAvgPool2d(1));
    net->push_back(torch::nn::Flatten());
    net->push_back(torch::nn::Linear(64, 10));
    TrainConfig train;  // SGD, Nesterov momentum, weight decay: the project's defaults
    train.fused_update = fused;
    auto optimizer = make_optimizer(net->parameters(), train, MemoryConfig{}, 0.01);
    auto step = [&] {
      optimizer->zero_grad();
      torch::cross_entropy_loss(net->forward(x), y).backward();
      optimizer->step();
    };
    step();  // momentum buffers (and, not fused, the gradients) exist from here on
    meter.reset_peak();
    step();
    *grad_bytes = total_bytes(net->parameters());
    *largest = 0;
    for (const auto& p : net->parameters())
      *largest = std::max<int64_t>(*largest, static_cast<int64_t>(p.nbytes()));
    return meter.peak() - base;
  };
  int64_t grad_bytes = 0, largest = 0;
  const int64_t plain = peak_of_step(false, &grad_bytes, &largest);
  const int64_t fused = peak_of_step(true, &grad_bytes, &largest);
  const int64_t drop = plain - fused;
  INFO("peak " << plain << " -> " << fused << " bytes, drop " << drop << ", gradients "
               << grad_bytes << ", largest layer " << largest);
  // The ideal drop is all gradients less the one alive at a time: fused, a layer's fresh
  // gradient lives inside backward, beside the activations not yet freed (the update works in
  // it, allocating nothing); not fused, the update's one scratch comes after backward, when the
  // activations are gone. So the drop lies between all gradients less two layers (a margin of
  // one layer over the ideal, for where the peak falls) and all gradients (when the peak is
  // before any gradient exists). Measured on this net: gradients 888,872 bytes, largest layer
  // 147,456, drop 888,872 (774,440 while the update held torch's two temporaries).
  CHECK(drop >= grad_bytes - 2 * largest);
  CHECK(drop <= grad_bytes);
}

TEST_CASE("host state keeps the optimizer's buffers out of the device's live bytes",
          "[optim][unit]") {
  MemoryMeter& meter = MemoryMeter::cpu();
  for (const bool adam : {false, true}) {
    INFO((adam ? "adam" : "sgd"));
    auto live_after_steps = [&](const std::string& where, int64_t* param_bytes) {
      torch::manual_seed(1);
      const int64_t base = meter.current();
      torch::nn::Sequential net = small_conv_net();
      TrainConfig train;
      train.optimizer = adam ? "adam" : "sgd";
      MemoryConfig memory;
      memory.optimizer_state = where;
      auto optimizer = make_optimizer(net->parameters(), train, memory, 0.01);
      steps_on_fixed_batches(net, *optimizer, 2);
      *param_bytes = total_bytes(net->parameters());
      return meter.current() - base;
    };
    int64_t param_bytes = 0;
    const int64_t on_device = live_after_steps("device", &param_bytes);
    const int64_t on_host = live_after_steps("host", &param_bytes);
    // Parameters and gradients stay; momentum (Adam: both moments) leaves the device.
    CHECK(on_device - on_host == (adam ? 2 : 1) * param_bytes);
  }
}

TEST_CASE("the profiler measures the step with the run's optimizer options", "[optim][unit]") {
  ModelConfig mc;
  mc.name = "simplecnn";
  mc.width = 0.25;
  auto profile_with = [&](bool fused, const std::string& state) {
    torch::manual_seed(3);
    auto chain = build_model(mc, {1, 16, 16}, 4);
    LocalModel model(chain, fixed_head_specs(chain->size(), 8));
    ProfilerOptions options;
    options.batch_sizes = {4};
    options.repeats = 1;
    options.unit_modes = false;
    options.train.fused_update = fused;
    options.memory.optimizer_state = state;
    return Profiler(options, torch::kCPU).profile_unit(model, 1);
  };
  const UnitProfile plain = profile_with(false, "device");
  const UnitProfile fused = profile_with(true, "device");
  const UnitProfile host = profile_with(false, "host");
  CHECK(plain.grad_bytes == plain.param_bytes);
  CHECK(plain.optimizer_bytes == plain.param_bytes);
  CHECK(fused.grad_bytes == 0);
  CHECK(fused.optimizer_bytes == plain.param_bytes);
  CHECK(host.grad_bytes == plain.param_bytes);
  CHECK(host.optimizer_bytes == 0);
  CHECK(fused.static_bytes() < plain.static_bytes());
  CHECK(host.static_bytes() < plain.static_bytes());
}

TEST_CASE("the memory-floor keys are validated, written back and refused where they cannot "
          "work",
          "[optim][config][unit]") {
  using nlohmann::json;
  const Config defaults = Config::from_json(json::object());
  CHECK(defaults.memory.optimizer_state == "device");
  CHECK_FALSE(defaults.train.fused_update);
  const Config set = Config::from_json(
      {{"memory", {{"optimizer_state", "host"}}}, {"train", {{"fused_update", true}}}});
  CHECK(set.memory.optimizer_state == "host");
  CHECK(set.train.fused_update);
  const Config again = Config::from_json(set.to_json());
  CHECK(again.memory.optimizer_state == "host");
  CHECK(again.train.fused_update);
  // Every method and memory strategy takes both.
  for (const char* method : {"backprop", "local", "neuroflux"})
    CHECK(error_of({{"method", method},
                    {"memory", {{"optimizer_state", "host"}}},
                    {"train", {{"fused_update", true}}}}) == "");
  for (const char* strategy : {"checkpoint", "checkpoint_sqrt", "offload"})
    CHECK(error_of({{"memory", {{"budget", "64MiB"}, {"strategy", strategy},
                                {"optimizer_state", "host"}}},
                    {"train", {{"fused_update", true}}}}) == "");

  CHECK_THAT(error_of({{"memory", {{"optimizer_state", "gpu"}}}}),
             Catch::StartsWith("/memory/optimizer_state"));
  CHECK_THAT(error_of({{"train", {{"fused_update", "yes"}}}}),
             Catch::StartsWith("/train/fused_update"));
  // Row-centric stripes add partial weight gradients: fused updates would apply each one.
  CHECK_THAT(error_of({{"model", {{"batch_norm", false}, {"row_centric", {{"stripes", 4}}}}},
                      {"train", {{"fused_update", true}}}}),
             Catch::StartsWith("/train/fused_update"));
  CHECK(error_of({{"model", {{"batch_norm", false}, {"row_centric", {{"stripes", 4}}}}},
                  {"memory", {{"optimizer_state", "host"}}}}) == "");
}

TEST_CASE("a unit step refuses fused updates with data-parallel ranks and row-centric units",
          "[optim][unit]") {
  torch::manual_seed(5);
  torch::nn::Sequential unit(torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 4, 3).padding(1)),
                             torch::nn::ReLU());
  torch::nn::Sequential head(torch::nn::AdaptiveAvgPool2d(1), torch::nn::Flatten(),
                             torch::nn::Linear(4, 3));
  std::vector<at::Tensor> params = unit->parameters();
  for (const auto& p : head->parameters()) params.push_back(p);
  TrainConfig train;
  train.fused_update = true;
  auto optimizer = make_optimizer(params, train, MemoryConfig{}, 0.1);
  const at::Tensor x = torch::randn({2, 1, 8, 8});
  const at::Tensor y = torch::randint(0, 3, {2}, torch::kLong);

  GradReducer reducer(std::make_shared<NoCommunicator>(), params, 1 << 20);
  auto refused_with = [&](GradReducer* r, UnitMode mode) {
    try {
      unit_step(unit, head, *optimizer, x, y, r, mode);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK_THAT(refused_with(&reducer, UnitMode::kPlain), Catch::StartsWith("/train/fused_update"));
  CHECK_THAT(refused_with(nullptr, UnitMode::kRowCentric),
             Catch::StartsWith("/train/fused_update"));
  CHECK(refused_with(nullptr, UnitMode::kPlain).empty());  // one process, plain: trains
}
