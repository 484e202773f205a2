#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cmath>

#include "neuroflux/optim/optim.h"

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
