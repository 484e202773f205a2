#include <catch2/catch.hpp>

#include <functional>
#include <limits>
#include <nlohmann/json.hpp>

#include "neuroflux/util/errors.h"
#include "neuroflux/plan/planner.h"
#include "plan/planner_test_util.h"

using namespace neuroflux;

namespace {

/// A chain of `n` units whose maps shrink with depth, as in a CNN: early units have large
/// activations and few parameters, late units the opposite.
Profile synthetic_profile(int n, double param_scale = 1.0) {
  Profile p;
  p.model = "synthetic";
  p.device = "cpu";
  p.num_classes = 10;
  int64_t c = 16, hw = 32;
  for (int i = 0; i < n; ++i) {
    UnitProfile u;
    u.unit = i;
    u.input_shape = {i == 0 ? 3 : c, hw, hw};
    if (i % 2 == 1) {
      c *= 2;
      hw /= 2;
    }
    u.output_shape = {c, hw, hw};
    u.head = i + 1 == n ? AuxHeadSpec{1, 0, true} : AuxHeadSpec{2, 32, false};
    u.param_bytes = static_cast<int64_t>(param_scale * 4 * 9 * c * c * 4);
    u.grad_bytes = u.param_bytes;
    u.optimizer_bytes = u.param_bytes;
    u.transient_static = 1 << 16;
    u.transient_per_sample = 3.0 * 4 * c * hw * hw;
    const double flops = 9.0 * c * c * hw * hw;
    u.step_seconds = {{8, flops * 3e-11}, {32, flops * 2e-11}, {128, flops * 1.5e-11}};
    u.forward_seconds_per_sample = flops * 5e-12;
    p.units.push_back(u);
  }
  return p;
}

}  // namespace

TEST_CASE("every planned block fits the budget and the blocks cover the chain", "[plan][unit]") {
  const Profile profile = synthetic_profile(8);
  const int64_t smallest =
      Planner(profile, test::planner_inputs(std::nullopt)).plan().smallest_feasible_budget;
  for (int64_t budget : {smallest, smallest * 3 / 2, smallest * 3, smallest * 40}) {
    INFO("budget " << budget);
    const Planner planner(profile, test::planner_inputs(budget));
    const Plan plan = planner.plan();
    int64_t next = 0;
    for (const auto& b : plan.blocks) {
      CHECK(b.first_unit == next);
      next = b.last_unit + 1;
      CHECK(b.batch_size >= 1);
      CHECK(b.batch_size <= 256);
      CHECK(b.predicted_peak_bytes <= 0.9 * budget + 1);
      CHECK(planner.predicted_peak(b.first_unit, b.last_unit, b.batch_size) <= budget);
      // The batch is the largest that fits: one more would not (or it is the cap).
      if (b.batch_size < 256)
        CHECK(planner.predicted_peak(b.first_unit, b.last_unit, b.batch_size + 1) > 0.9 * budget);
    }
    CHECK(next == 8);
  }
}

TEST_CASE("late blocks with small maps get larger batches", "[plan][unit]") {
  // Activations dominate (as at batch sizes where memory binds): small parameter counts.
  const Profile profile = synthetic_profile(8, 0.01);
  const int64_t smallest =
      Planner(profile, test::planner_inputs(std::nullopt)).plan().smallest_feasible_budget;
  const Planner planner(profile, test::planner_inputs(smallest * 16));
  const Plan plan = planner.plan();
  REQUIRE(plan.blocks.size() >= 2);
  CHECK(plan.blocks.back().batch_size > plan.blocks.front().batch_size);
  CHECK(plan.blocks.back().lr >= plan.blocks.front().lr);
}

TEST_CASE("the dynamic program finds the cheapest partition", "[plan][unit]") {
  const int n = 7;
  const Profile profile = synthetic_profile(n);
  const int64_t smallest =
      Planner(profile, test::planner_inputs(std::nullopt)).plan().smallest_feasible_budget;
  for (int64_t budget : {smallest, smallest * 2, smallest * 8}) {
    const Planner planner(profile, test::planner_inputs(budget));
    const Plan plan = planner.plan();
    // Brute force over all 2^(n-1) partitions.
    double best = std::numeric_limits<double>::infinity();
    for (int mask = 0; mask < (1 << (n - 1)); ++mask) {
      double total = 0;
      int first = 0;
      bool ok = true;
      for (int i = 0; i < n && ok; ++i) {
        const bool cut = i == n - 1 || ((mask >> i) & 1);
        if (!cut) continue;
        const int64_t b = planner.largest_batch(first, i);
        if (b < 1) ok = false;
        else total += planner.predicted_seconds(first, i, b);
        first = i + 1;
      }
      if (ok) best = std::min(best, total);
    }
    CHECK(plan.predicted_seconds == Approx(best).epsilon(1e-9));
  }
}

TEST_CASE("shallow blocks train fewer epochs, and that makes splitting them off pay",
          "[plan][unit]") {
  const Profile profile = synthetic_profile(8);
  PlannerInputs flat = test::planner_inputs(std::nullopt);
  const Plan one = Planner(profile, flat).plan();
  // Without a budget and with every block at full epochs, a cut only adds a caching pass.
  REQUIRE(one.blocks.size() == 1);
  CHECK(one.blocks[0].epochs == 5);

  PlannerInputs tapered = test::planner_inputs(std::nullopt);
  tapered.shallow_epoch_fraction = 0.5;
  const Planner planner(profile, tapered);
  CHECK(planner.block_epochs(0) == 3);   // round(5 * 0.5)
  CHECK(planner.block_epochs(7) == 5);   // the deepest unit trains every epoch
  for (int64_t i = 1; i < 8; ++i) CHECK(planner.block_epochs(i) >= planner.block_epochs(i - 1));
  const Plan plan = planner.plan();
  CHECK(plan.blocks.size() > 1);
  for (const auto& b : plan.blocks) CHECK(b.epochs == planner.block_epochs(b.last_unit));
  CHECK(plan.predicted_seconds < one.predicted_seconds);

  tapered.shallow_epoch_fraction = 0.01;
  tapered.epochs = 1;
  CHECK(Planner(profile, tapered).block_epochs(0) == 1);  // never zero
}

TEST_CASE("an impossible budget names the smallest feasible one", "[plan][unit]") {
  const Profile profile = synthetic_profile(6);
  const Planner loose(profile, test::planner_inputs(std::nullopt));
  const int64_t smallest = loose.plan().smallest_feasible_budget;
  try {
    Planner(profile, test::planner_inputs(smallest - 1)).plan();
    FAIL("expected a BudgetError");
  } catch (const BudgetError& e) {
    CHECK(e.smallest_feasible_bytes() == smallest);
    CHECK(e.code() == ExitCode::kOverBudget);
    CHECK(std::string(e.what()).find("smallest budget") != std::string::npos);
  }
  const Plan at_smallest = Planner(profile, test::planner_inputs(smallest)).plan();
  CHECK(at_smallest.blocks.size() >= 1);
}

TEST_CASE("plans and profiles round-trip through JSON", "[plan][unit]") {
  const Profile profile = synthetic_profile(5);
  CHECK(Profile::from_json(profile.to_json()).to_json() == profile.to_json());
  const Plan plan = Planner(profile, test::planner_inputs(std::nullopt)).plan();
  CHECK(Plan::from_json(plan.to_json()).to_json() == plan.to_json());
  CHECK(plan.table().find("| block |") != std::string::npos);
}

TEST_CASE("a plan read back is one the trainer can follow, or a json error", "[plan][unit]") {
  // Found by tests/fuzz/fuzz_plan.cpp: Plan::from_json took any numbers (a float past int64's
  // range is undefined behaviour in json's get<int64_t>), so a hand-edited plan.json could put
  // pool 0 on a head, gaps between blocks or a batch of 0 in front of the trainer.
  const nlohmann::json good =
      Planner(synthetic_profile(4), test::planner_inputs(std::nullopt)).plan().to_json();
  REQUIRE(good["blocks"].size() >= 1);
  const auto refused = [&](const std::function<void(nlohmann::json&)>& edit,
                           const std::string& words) {
    nlohmann::json j = good;
    edit(j);
    try {
      Plan::from_json(j);
    } catch (const nlohmann::json::exception& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find(words) != std::string::npos);
      return;
    }
    FAIL("accepted: " << j.dump());
  };
  refused([](auto& j) { j["blocks"][0]["batch_size"] = 1e300; }, "batch_size must be an integer");
  refused([](auto& j) { j["blocks"][0]["batch_size"] = 0; }, "batch_size must be an integer >= 1");
  refused([](auto& j) { j["blocks"][0]["epochs"] = -2; }, "epochs");
  refused([](auto& j) { j["blocks"][0]["lr"] = 0; }, "lr must be a positive number");
  refused([](auto& j) { j["heads"][0]["pool"] = 0; }, "pool must be an integer >= 1");
  refused([](auto& j) { j["heads"][0]["width"] = 2.5; }, "width must be an integer");
  refused([](auto& j) { j["heads"][0]["classifier"] = true; }, "head 0 must not be the classifier");
  refused([](auto& j) { j["heads"].back()["classifier"] = false; }, "must be the classifier");
  refused([](auto& j) { j["blocks"][0]["units"] = {1, 0}; }, "must start at unit 0");
  refused(
      [](auto& j) {
        j["blocks"].back()["units"][1] = 99;
        j["blocks"].back()["unit_modes"] = nlohmann::json::array();
      },
      "the blocks cover 100 units");
  refused([](auto& j) { j["blocks"][0]["unit_modes"] = {"sideways"}; }, "unknown unit mode");
  // Fewer or more modes than units are accepted: the block trainer runs missing ones plain and
  // ignores extras.
  nlohmann::json extra_modes = good;
  extra_modes["blocks"][0]["unit_modes"] = {"plain", "recompute", "plain", "plain", "plain"};
  CHECK_NOTHROW(Plan::from_json(extra_modes));
  refused([](auto& j) { j["blocks"] = nlohmann::json::array(); }, "the blocks cover 0 units");
  CHECK(Plan::from_json(good).to_json() == good);
}

TEST_CASE("step time is interpolated in log batch and clamped outside", "[plan][unit]") {
  UnitProfile u;
  u.step_seconds = {{8, 4.0}, {32, 2.0}};
  CHECK(u.step_seconds_per_sample(4) == 4.0);
  CHECK(u.step_seconds_per_sample(16) == Approx(3.0));
  CHECK(u.step_seconds_per_sample(1024) == 2.0);
  CHECK(scaled_lr(0.1, 256, 128) == Approx(0.2));
  CHECK(scaled_lr(0.1, 4096, 128) == Approx(0.4));
  TrainConfig t;
  t.lr = 0.1;
  t.batch_size = 64;
  CHECK(run_lr(t, 64) == Approx(0.1));     // the configured batch runs at the configured rate
  t.batch_size = 0;                        // "auto": the rate is taken to be tuned for 128
  CHECK(run_lr(t, 4) == Approx(0.1 * 4 / 128.0));
  t.lr_reference_batch = 32;
  CHECK(run_lr(t, 64) == Approx(0.2));
}

TEST_CASE("the planner runs a unit recomputed or row-centric only where that pays or fits",
          "[plan][unit]") {
  Profile profile = synthetic_profile(6);
  // Unit 0's plain step is the heaviest of the chain (it sets the smallest budget); a leaner but
  // slower mode: a tenth of the workspace, a third of the transient per sample, 1.5x the time.
  profile.units[0].transient_static = 64 << 20;
  UnitModeProfile lean;
  lean.mode = "row_centric";
  lean.transient_static = profile.units[0].transient_static / 10;
  lean.transient_per_sample = profile.units[0].transient_per_sample / 3;
  for (const auto& [b, t] : profile.units[0].step_seconds) lean.step_seconds.emplace_back(b, 1.5 * t);
  profile.units[0].alternatives.push_back(lean);

  Profile plain_only = profile;
  plain_only.units[0].alternatives.clear();
  const int64_t plain_floor =
      Planner(plain_only, test::planner_inputs(std::nullopt)).plan().smallest_feasible_budget;
  const Plan loose_plan = Planner(profile, test::planner_inputs(std::nullopt)).plan();
  CHECK(loose_plan.smallest_feasible_budget < plain_floor);

  SECTION("below plain's floor, the lean mode makes a plan possible and it fits") {
    const int64_t budget = (loose_plan.smallest_feasible_budget + plain_floor) / 2;
    CHECK_THROWS_AS(Planner(plain_only, test::planner_inputs(budget)).plan(), BudgetError);
    const Planner planner(profile, test::planner_inputs(budget));
    const Plan plan = planner.plan();
    REQUIRE(plan.blocks[0].first_unit == 0);
    REQUIRE(plan.blocks[0].unit_modes.size() ==
            static_cast<size_t>(plan.blocks[0].last_unit + 1));
    CHECK(plan.blocks[0].unit_modes[0] == "row_centric");
    for (const PlannedBlock& b : plan.blocks) {
      CHECK(planner.predicted_peak(b.first_unit, b.last_unit, b.batch_size, b.unit_modes) <=
            0.9 * budget);
      CHECK(b.predicted_peak_bytes <= budget);
    }
  }
  SECTION("with room to spare every unit stays plain") {
    const Plan plan = Planner(profile, test::planner_inputs(plain_floor * 100)).plan();
    for (const PlannedBlock& b : plan.blocks)
      for (const std::string& m : b.unit_modes) CHECK(m == "plain");
  }
  SECTION("modes round-trip through the plan's JSON") {
    const int64_t budget = (loose_plan.smallest_feasible_budget + plain_floor) / 2;
    const Plan plan = Planner(profile, test::planner_inputs(budget)).plan();
    CHECK(Plan::from_json(plan.to_json()).to_json() == plan.to_json());
    CHECK(plan.table().find("row_centric") != std::string::npos);
  }
}

TEST_CASE("the planner gives a block fewer threads only where that fits it or pays",
          "[plan][unit]") {
  Profile profile = synthetic_profile(6);
  profile.threads = 2;
  // Every unit measured again at one thread: unit 3's step then holds far less scratch (as
  // ATen's per-thread buffers do on small maps) and every step takes 1.8x the time.
  profile.units[3].transient_static = 64 << 20;
  for (UnitProfile& u : profile.units) {
    UnitModeProfile one;
    one.mode = "plain";
    one.threads = 1;
    one.transient_static = u.unit == 3 ? u.transient_static / 8 : u.transient_static;
    one.transient_per_sample = u.transient_per_sample;
    for (const auto& [b, t] : u.step_seconds) one.step_seconds.emplace_back(b, 1.8 * t);
    u.at_fewer_threads.push_back(one);
  }
  REQUIRE(profile.fewer_thread_counts() == std::vector<int64_t>{1});

  Profile run_threads_only = profile;
  for (UnitProfile& u : run_threads_only.units) u.at_fewer_threads.clear();
  const int64_t run_floor =
      Planner(run_threads_only, test::planner_inputs(std::nullopt)).plan().smallest_feasible_budget;
  const Plan loose = Planner(profile, test::planner_inputs(std::nullopt)).plan();
  CHECK(loose.smallest_feasible_budget < run_floor);

  SECTION("below the run's floor, one thread makes a plan possible and it fits") {
    const int64_t budget = (loose.smallest_feasible_budget + run_floor) / 2;
    CHECK_THROWS_AS(Planner(run_threads_only, test::planner_inputs(budget)).plan(), BudgetError);
    const Planner planner(profile, test::planner_inputs(budget));
    const Plan plan = planner.plan();
    bool unit3_at_one = false;
    for (const PlannedBlock& b : plan.blocks) {
      CHECK(planner.predicted_peak(b.first_unit, b.last_unit, b.batch_size, b.unit_modes,
                                   b.threads) <= 0.9 * budget);
      if (b.first_unit <= 3 && 3 <= b.last_unit) unit3_at_one = b.threads == 1;
    }
    CHECK(unit3_at_one);
    // The count travels with the plan, as a user's edited plan.json would carry it.
    const Plan again = Plan::from_json(plan.to_json());
    CHECK(again.to_json() == plan.to_json());
    CHECK(plan.table().find("| 1 |\n") != std::string::npos);  // the threads column
    CHECK(Profile::from_json(profile.to_json()).to_json() == profile.to_json());
  }
  SECTION("with room to spare no block gives up threads") {
    const Plan plan = Planner(profile, test::planner_inputs(run_floor * 100)).plan();
    for (const PlannedBlock& b : plan.blocks) CHECK(b.threads == 0);
  }
  SECTION("a plan's thread count must be a count") {
    nlohmann::json j = loose.to_json();
    j["blocks"][0]["threads"] = -1;
    CHECK_THROWS_AS(Plan::from_json(j), nlohmann::json::exception);
  }
}

TEST_CASE("a fitted transient never falls below what was measured at a batch not above it",
          "[plan][unit]") {
  // A line through batches 2..128 undershoots the small ones where one batch-independent buffer
  // dominates them, as im2col's weight gradient does on a map of a few pixels.
  UnitProfile u;
  u.transient_static = 200000;
  u.transient_per_sample = 80000;
  u.transient_peaks = {{2, 600000}, {8, 960000}, {32, 2650000}, {128, 10600000}};
  CHECK(u.transient_bytes(1) == Approx(280000));    // below every measurement: the line
  CHECK(u.transient_bytes(2) == Approx(600000));    // the line says 360,000
  CHECK(u.transient_bytes(4) == Approx(600000));
  CHECK(u.transient_bytes(8) == Approx(960000));    // the line says 840,000
  CHECK(u.transient_bytes(64) == Approx(5320000));  // above the measurements below it: the line
  UnitModeProfile m;
  m.transient_static = u.transient_static;
  m.transient_per_sample = u.transient_per_sample;
  m.transient_peaks = u.transient_peaks;
  for (const int64_t b : {1, 2, 3, 8, 9, 100, 500}) CHECK(m.transient_bytes(b) == u.transient_bytes(b));
}
