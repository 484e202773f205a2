#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <filesystem>

#include "neuroflux/cache/block_inputs.h"
#include "neuroflux/data/data_splits.h"
#include "neuroflux/errors.h"
#include "neuroflux/exit/exported_model.h"
#include "neuroflux/memory/device_residency.h"
#include "neuroflux/memory_meter.h"
#include "neuroflux/models/model_zoo.h"
#include "neuroflux/models/sequential_stage.h"
#include "neuroflux/models/unit_groups.h"
#include "neuroflux/train/block_trainer.h"
#include "neuroflux/train/neuroflux_trainer.h"
#include "neuroflux/train/run.h"
#include "neuroflux/util/atomic_file.h"

using namespace neuroflux;

namespace {

Config synthetic_config(const std::string& method) {
  Config c;
  c.method = method;
  c.seed = 11;
  c.threads = 1;
  c.data.name = "synthetic";
  c.data.image_size = 16;
  c.data.channels = 3;
  c.data.num_classes = 4;
  c.data.train_size = 768;
  c.data.test_size = 256;
  c.data.val_fraction = 0.25;
  c.model.name = "vgg11";
  c.model.width = 0.125;
  c.train.epochs = 2;
  c.train.batch_size = 32;
  c.train.max_batch_size = 128;
  c.neuroflux.block_patience = 2;
  return c;
}

std::string fresh_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("neuroflux-nf-" + name);
  std::filesystem::remove_all(dir);
  return dir.string();
}

}  // namespace

TEST_CASE("neuroflux trains under a budget that backprop's batch needs three times over",
          "[neuroflux][integration]") {
  // Backprop's peak at batch 128 (measured once for both sections), then a third of it as
  // NeuroFlux's budget.
  static const int64_t backprop_peak = [] {
    Config bp = synthetic_config("backprop");
    bp.train.batch_size = 128;
    bp.train.epochs = 1;
    bp.output.dir = fresh_dir("bp");
    return run_training(bp, false).peak_memory_bytes;
  }();

  // Each head family is profiled, planned and held to the budget alike.
  const std::string aux = GENERATE(as<std::string>{}, "adaptive", "deep");
  INFO("neuroflux.aux = " << aux);
  Config nf = synthetic_config("neuroflux");
  nf.memory.budget = backprop_peak / 3;
  nf.neuroflux.progressive_exit = false;
  nf.neuroflux.aux = aux;
  nf.output.dir = fresh_dir("nf-" + aux);
  const Report report = run_training(nf, false);

  CHECK(report.method == "neuroflux");
  CHECK(report.peak_memory_bytes <= *nf.memory.budget);
  REQUIRE(report.blocks.size() >= 2);
  int64_t next = 0;
  for (const auto& b : report.blocks) {
    INFO("block " << b.first_unit << "-" << b.last_unit << " batch " << b.batch_size);
    CHECK(b.first_unit == next);
    next = b.last_unit + 1;
    CHECK(b.peak_memory_bytes <= *nf.memory.budget);
    // The profiler's fitted peak against the measured one: within 20%.
    const double measured = b.extra.at("training_peak_bytes").get<double>();
    const double predicted = static_cast<double>(*b.predicted_peak_bytes);
    CHECK(std::abs(measured - predicted) <= 0.2 * predicted);
    if (b.last_unit + 1 < 8) CHECK(b.cache_bytes > 0);
  }
  CHECK(next == 8);
  CHECK(report.final.test_accuracy > 0.25 + 0.1);
  CHECK(report.final.params <= report.full_model_params);
  CHECK(report.final.exit_unit >= 0);
  for (const char* f : {"report.json", "plan.json", "profile.json", "model.pt", "full_model.pt"})
    CHECK(std::filesystem::exists(nf.output.dir + "/" + f));

  // The exported early exit reloads and gives the reported accuracy.
  ExportDescription description;
  auto exported = load_exported(nf.output.dir + "/model.pt", &description);
  CHECK(description.exit_unit == report.final.exit_unit);
  CHECK(parameter_count(exported) == report.final.params);
}

TEST_CASE("modules of several units train, exit and export on module boundaries",
          "[neuroflux][integration]") {
  Config config = synthetic_config("neuroflux");
  config.train.epochs = 1;
  config.neuroflux.module_units = 0;  // "stage": one module per resolution
  config.neuroflux.aux = "deep";
  config.output.dir = fresh_dir("modules");
  const Report report = run_training(config, false);
  UnitChain units = build_model(config.model, {3, 16, 16}, 4);
  const auto stages = static_cast<int64_t>(module_sizes(0, *units).size());
  REQUIRE(stages < units->size());
  const auto heads = report.extra.at("head_val_accuracy");
  CHECK(static_cast<int64_t>(heads.size()) == stages);  // one head per module
  CHECK(report.blocks.back().last_unit == stages - 1);
  ExportDescription description;
  auto exported = load_exported(config.output.dir + "/model.pt", &description);
  CHECK(description.module_units == 0);
  CHECK(description.exit_unit == report.final.exit_unit);
  CHECK(parameter_count(exported) == report.final.params);
}

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

TEST_CASE("local learning trains every head", "[local][integration]") {
  Config config = synthetic_config("local");
  config.model.name = "simplecnn";
  config.model.width = 0.25;
  config.neuroflux.aux_width = 16;
  config.output.dir = fresh_dir("local");
  const Report report = run_training(config, false);
  REQUIRE(report.history.size() == 2);
  CHECK(report.history[0].head_val_accuracy.size() == 4);
  CHECK(report.blocks.size() == 1);
  CHECK(report.final.test_accuracy > 0.25 + 0.1);
  CHECK(report.history[1].train_loss < report.history[0].train_loss);
}

TEST_CASE("below plain units' smallest budget NeuroFlux trains with leaner unit modes",
          "[neuroflux][integration]") {
  // Wide full-resolution heads make a plain unit step heavy: with unit_modes "plain" no plan
  // fits, with "auto" the planner recomputes or stripes some units and the run fits.
  neuroflux::Config config = synthetic_config("neuroflux");
  config.data.image_size = 32;
  config.data.channels = 1;
  config.data.train_size = 640;
  config.data.test_size = 64;
  config.data.val_fraction = 0.1;
  config.model.name = "simplecnn";
  config.model.width = 0.25;
  config.model.batch_norm = false;
  config.neuroflux.aux = "fixed";
  config.neuroflux.aux_width = 64;
  config.memory.budget = 600 * 1024;
  const auto dir = std::filesystem::temp_directory_path() / "neuroflux-test-unit-modes";
  std::filesystem::remove_all(dir);
  config.output.dir = dir.string();

  neuroflux::Config plain = config;
  plain.neuroflux.unit_modes = "plain";
  CHECK_THROWS_AS(neuroflux::run_training(plain, false), neuroflux::BudgetError);

  const neuroflux::Report report = neuroflux::run_training(config, false);
  CHECK(report.peak_memory_bytes <= *config.memory.budget);
  int leaner = 0;
  for (const auto& block : report.blocks) {
    CHECK(block.peak_memory_bytes <= *config.memory.budget);
    for (const auto& mode : block.extra.at("unit_modes")) leaner += mode != "plain";
  }
  CHECK(leaner > 0);
  CHECK(report.final.val_accuracy > 0.4);   // four classes: it learnt
  std::filesystem::remove_all(dir);
}

TEST_CASE("a finished run removes only the cache directory it made, never the user's",
          "[neuroflux][integration]") {
  namespace fs = std::filesystem;
  // A third of backprop's peak at batch 128 splits the network into blocks, so caches are used.
  Config bp = synthetic_config("backprop");
  bp.train.batch_size = 128;
  bp.train.epochs = 1;
  bp.data.train_size = 256;
  bp.output.dir = fresh_dir("owned-cache-bp");
  const int64_t backprop_peak = run_training(bp, false).peak_memory_bytes;

  Config config = synthetic_config("neuroflux");
  config.train.epochs = 1;
  config.data.train_size = 256;
  config.memory.budget = backprop_peak / 3;
  config.neuroflux.cache_where = "disk";
  const std::string user_dir = fresh_dir("user-cache");
  fs::create_directories(user_dir);
  write_file_atomic(user_dir + "/notes.txt", "the user's own file\n");
  config.neuroflux.cache_dir = user_dir;
  config.output.dir = fresh_dir("owned-cache-run");

  const Report report = run_training(config, false);
  REQUIRE(report.blocks.size() >= 2);  // a later block read a disk cache
  CHECK(read_file(user_dir + "/notes.txt") == "the user's own file\n");
  int64_t left = 0;
  for (const auto& entry : fs::directory_iterator(user_dir)) {
    INFO(entry.path().string());
    CHECK(entry.path().filename() == "notes.txt");
    ++left;
  }
  CHECK(left == 1);  // the run's own directory went, the user's file stayed

  // Without neuroflux.cache.dir the caches live in OUT/cache, removed just the same.
  config.neuroflux.cache_dir.clear();
  config.output.dir = fresh_dir("owned-cache-default");
  run_training(config, false);
  CHECK_FALSE(fs::exists(config.output.dir + "/cache"));
  CHECK(fs::exists(config.output.dir + "/report.json"));
}
