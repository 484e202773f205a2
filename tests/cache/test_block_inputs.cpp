#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "neuroflux/cache/block_inputs.h"
#include "neuroflux/memory/device_residency.h"
#include "neuroflux/models/sequential_stage.h"
#include "neuroflux/train/block_trainer.h"
#include "neuroflux/train/run.h"
#include "train/train_test_util.h"

using namespace neuroflux;
using neuroflux::test::fresh_dir;
using neuroflux::test::synthetic_config;

TEST_CASE("a block trained from the cache equals one trained from recomputed inputs",
          "[neuroflux][cache][integration]") {
  Config config = synthetic_config("neuroflux");
  config.train.epochs = 1;
  const PreparedRun run = prepare_run(config);
  LocalModel model(run.model, fixed_head_specs(run.model->size(), 16));
  const c10::Device cpu(c10::kCPU);

  BlockTrainingOptions first;
  first.first_unit = 0;
  first.last_unit = 1;
  first.batch_size = 32;
  first.eval_batch_size = 64;
  first.max_epochs = 1;
  first.patience = 0;
  auto data_in = data_input(run.data, config, cpu);
  train_block(model, *data_in, first, config);

  // Snapshot the second block's initial weights, train it from a float32 cache...
  torch::nn::Sequential second;
  for (int64_t i = 2; i <= 3; ++i) {
    second->push_back(as_stage(model->chain()->unit(i)));
    second->push_back(as_stage(model->head(i)));
  }
  std::vector<at::Tensor> initial;
  for (const auto& p : second->parameters()) initial.push_back(p.detach().clone());
  for (const auto& b : second->buffers()) initial.push_back(b.detach().clone());

  CacheOptions options;
  options.where = "host";
  options.dtype = at::kFloat;
  const SplitCaches caches = write_block_caches(
      model, *data_in, 0, 1, 64, options, [](Split) { return std::string(); }, 1);
  BlockTrainingOptions next = first;
  next.first_unit = 2;
  next.last_unit = 3;
  auto cached = cache_input(caches[0], caches[1], caches[2], run.data, config, cpu);
  const BlockOutcome from_cache = train_block(model, *cached, next, config);
  std::vector<at::Tensor> trained_from_cache;
  for (const auto& p : second->parameters()) trained_from_cache.push_back(p.detach().clone());

  // ... then from the start again, recomputing units 0-1 on every batch.
  {
    torch::NoGradGuard no_grad;
    size_t k = 0;
    for (auto& p : second->parameters()) p.copy_(initial[k++]);
    for (auto& b : second->buffers()) b.copy_(initial[k++]);
  }
  auto recomputed = recompute_input(run.data, config, model, 2, cpu);
  const BlockOutcome from_recompute = train_block(model, *recomputed, next, config);
  size_t k = 0;
  for (const auto& p : second->parameters()) {
    const at::Tensor& a = trained_from_cache[k++];
    CHECK(torch::allclose(a, p.detach(), 1e-4, 1e-5));
  }
  CHECK(from_cache.history[0].train_loss == Approx(from_recompute.history[0].train_loss).epsilon(1e-4));
}
