#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "neuroflux/util/errors.h"
#include "neuroflux/exit/exported_model.h"
#include "neuroflux/models/model_zoo.h"
#include "neuroflux/models/unit_groups.h"
#include "neuroflux/plan/plan.h"
#include "neuroflux/profile/profile.h"
#include "neuroflux/train/run.h"
#include "train/train_test_util.h"

using namespace neuroflux;
using neuroflux::test::fresh_dir;
using neuroflux::test::synthetic_config;

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

  // Each head family and local loss is profiled, planned and held to the budget alike (the
  // decoders' weights and maps included).
  const auto [aux, loss] = GENERATE(std::pair<std::string, std::string>{"adaptive", "ce"},
                                    std::pair<std::string, std::string>{"deep", "ce"},
                                    std::pair<std::string, std::string>{"deep", "ce+sim+recon"},
                                    std::pair<std::string, std::string>{"copies", "ce"});
  INFO("neuroflux.aux = " << aux << ", neuroflux.local_loss = " << loss);
  Config nf = synthetic_config("neuroflux");
  nf.memory.budget = backprop_peak / 3;
  nf.neuroflux.progressive_exit = false;
  nf.neuroflux.aux = aux;
  nf.neuroflux.local_loss = loss;
  nf.output.dir = fresh_dir("nf-" + aux + "-" + loss);
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
  // Decoders are training aids: the export carries units and one head only.
  for (const auto& item : exported->named_children())
    CHECK((item.key().rfind("unit", 0) == 0 || item.key() == "head"));
}

TEST_CASE("modules of several units train, exit and export on module boundaries",
          "[neuroflux][integration]") {
  Config config = synthetic_config("neuroflux");
  config.train.epochs = 1;
  // "stage": one module per resolution; "auto" without a budget keeps the stages too, but the
  // planner groups the chain and the plan records it.
  config.neuroflux.module_units = GENERATE(kStageModules, kAutoModules);
  INFO("module_units " << config.neuroflux.module_units);
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
  CHECK(description.module_sizes == module_sizes(0, *units));
  CHECK(description.exit_unit == report.final.exit_unit);
  if (config.neuroflux.module_units == kAutoModules)
    CHECK(Plan::from_json(report.extra.at("plan")).module_sizes == module_sizes(0, *units));
  CHECK(parameter_count(exported) == report.final.params);
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

TEST_CASE("train.warmup_epochs: every block warms up over its own epochs, backprop over the run",
          "[neuroflux][integration]") {
  Config bp = synthetic_config("backprop");
  bp.train.epochs = 2;
  bp.train.warmup_epochs = 0.5;
  bp.output.dir = fresh_dir("warmup-bp");
  const Report backprop = run_training(bp, false);
  // 576 training samples in batches of 32: 18 batches, the warm-up 9 of them. The history
  // records each epoch's first batch: 0.05 / 9, then the cosine's start, 0.05.
  const int64_t train_samples = backprop.extra.at("train_samples");
  REQUIRE(train_samples == 576);
  REQUIRE(backprop.history.size() == 2);
  CHECK(backprop.history[0].lr == Approx(0.05 / 9));
  CHECK(backprop.history[1].lr == Approx(0.05 * 0.5 * (1 + std::cos(std::acos(-1.0) / 3))));

  Config nf = synthetic_config("neuroflux");
  nf.memory.budget = backprop.peak_memory_bytes / 2;
  nf.train.epochs = 2;
  nf.train.warmup_epochs = 1;
  nf.neuroflux.progressive_exit = false;
  nf.output.dir = fresh_dir("warmup-nf");
  const Report report = run_training(nf, false);
  REQUIRE(report.blocks.size() >= 2);
  for (const auto& b : report.blocks) {
    // Block k's first batch: its rate / (its batches per epoch x its warm-up), the warm-up at
    // most half of the block's planned epochs.
    const auto k = static_cast<int64_t>(&b - &report.blocks.front());
    const double lr = b.extra.at("lr");
    const double warmup = std::min(1.0, 0.5 * b.extra.at("epochs_planned").get<double>());
    const double batches = std::ceil(static_cast<double>(train_samples) / b.batch_size);
    INFO("block " << k << ": batch " << b.batch_size << ", lr " << lr);
    const auto first = std::find_if(report.history.begin(), report.history.end(),
                                    [k](const HistoryEntry& h) { return h.block == k; });
    REQUIRE(first != report.history.end());
    CHECK(first->epoch == 1);
    CHECK(first->lr == Approx(lr / (batches * warmup)));
  }
}

TEST_CASE("exit_ensemble: pairs of neighbouring heads are exit candidates",
          "[neuroflux][integration]") {
  Config config = synthetic_config("neuroflux");
  config.train.epochs = 1;
  config.neuroflux.progressive_exit = false;
  config.neuroflux.exit_ensemble = true;
  config.neuroflux.exit_tolerance = 0;  // the most accurate candidate, head or pair
  config.output.dir = fresh_dir("nf-ensemble");
  const Report report = run_training(config, false);
  const auto& heads = report.extra.at("head_val_accuracy");
  const auto& pairs = report.extra.at("pair_val_accuracy");
  REQUIRE(pairs.size() + 1 == heads.size());
  double best = 0;
  for (const auto& h : heads) best = std::max(best, h.get<double>());
  for (const auto& p : pairs) best = std::max(best, p.get<double>());  // all measured
  CHECK(report.final.val_accuracy == best);
  const auto& chosen = report.extra.at("exit_ensemble");
  ExportDescription description;
  auto exported = load_exported(config.output.dir + "/model.pt", &description);
  CHECK(parameter_count(exported) == report.final.params);
  CHECK(description.exit_unit == report.final.exit_unit);
  CHECK(description.next_head.has_value() == !chosen.is_null());
  if (!chosen.is_null()) {
    const int64_t k = report.final.exit_unit;
    CHECK(chosen.at("units") == nlohmann::json{k, k + 1});
    CHECK(pairs[static_cast<size_t>(k)].get<double>() == best);
  }
}

TEST_CASE("a plan that gives a block fewer intra-op threads trains it so, under the budget",
          "[neuroflux][integration]") {
  Config config = synthetic_config("neuroflux");
  config.threads = 2;
  config.train.epochs = 1;
  config.neuroflux.progressive_exit = false;
  config.neuroflux.block_threads = "auto";
  config.memory.budget = 4 << 20;
  config.output.dir = fresh_dir("threads-profiled");
  run_training(config, false);
  // "auto" profiles every unit's plain step at one thread too.
  std::ifstream profile_file(config.output.dir + "/profile.json");
  const Profile profile = Profile::from_json(nlohmann::json::parse(profile_file));
  CHECK(profile.threads == 2);
  CHECK(profile.fewer_thread_counts() == std::vector<int64_t>{1});

  // The same plan with block 1 at one thread and the others at the run's count, as the planner
  // writes it where that fits (whatever this profile's own choice was).
  std::ifstream plan_file(config.output.dir + "/plan.json");
  Plan plan = Plan::from_json(nlohmann::json::parse(plan_file));
  if (plan.blocks.size() == 1) {
    // The planner's grouping follows measured times, and on a loaded machine it may put every
    // unit in one block: split off the first unit at the same batch, which needs no more memory
    // than the whole block did.
    const PlannedBlock whole = plan.blocks[0];
    REQUIRE(whole.last_unit > whole.first_unit);
    PlannedBlock head = whole, rest = whole;
    head.last_unit = whole.first_unit;
    rest.first_unit = whole.first_unit + 1;
    if (!whole.unit_modes.empty()) {
      head.unit_modes = {whole.unit_modes.front()};
      rest.unit_modes.erase(rest.unit_modes.begin());
    }
    plan.blocks = {head, rest};
  }
  REQUIRE(plan.blocks.size() >= 2);
  for (PlannedBlock& b : plan.blocks) b.threads = 0;
  plan.blocks[1].threads = 1;
  const std::string edited = config.output.dir + "/plan-one-thread.json";
  std::ofstream(edited) << plan.to_json().dump(2);
  config.neuroflux.plan_file = edited;
  config.output.dir = fresh_dir("threads-planned");
  const Report report = run_training(config, false);
  CHECK(report.peak_memory_bytes <= *config.memory.budget);
  for (size_t k = 0; k < report.blocks.size(); ++k) {
    INFO("block " << k);
    CHECK(report.blocks[k].extra.at("threads") == (k == 1 ? 1 : 2));
    CHECK(report.blocks[k].peak_memory_bytes <= *config.memory.budget);
  }
  CHECK(at::get_num_threads() == 2);  // handed back after the block
}

TEST_CASE("a model whose weights exceed the budget together profiles and trains unit by unit",
          "[neuroflux][integration]") {
  // vgg11 at width 0.125 holds 582,032 B of weights (heads apart); with the optimizer state on
  // the host and fused updates one unit's step needs about 500 KB. Only one unit (with its head)
  // may be on the device in any phase, profiling included: the model waits in host memory.
  Config config = synthetic_config("neuroflux");
  config.train.epochs = 1;
  config.memory.optimizer_state = "host";
  config.train.fused_update = true;
  config.memory.budget = 560000;
  // The shallowest head within 0.5 of the best is exported, so the exported model fits too.
  config.neuroflux.exit_tolerance = 0.5;
  config.neuroflux.progressive_exit = false;
  config.output.dir = fresh_dir("weights-over-budget");
  const Report report = run_training(config, false);
  CHECK(report.full_model_params * 4 > *config.memory.budget);
  CHECK(report.blocks.back().last_unit == 7);  // every unit trained
  for (const auto& [phase, peak] : report.phase_peaks.phases()) {
    INFO("phase " << phase);
    CHECK(peak <= *config.memory.budget);
  }
  CHECK(report.peak_memory_bytes <= *config.memory.budget);
}
