// The schedule DP against brute force and against the sqrt(n) rule, on hand-made cost chains.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <limits>
#include <random>

#include "neuroflux/recompute/checkpoint_schedule.h"
#include "schedule_test_util.h"

using namespace neuroflux;
using neuroflux::test::checkpoint;
using neuroflux::test::store;

namespace {


// Every byte count a multiple of `unit`, so a DP over budget/unit slots rounds nothing.
ChainCosts random_chain_costs(std::mt19937& rng, int64_t stages, int64_t unit) {
  std::uniform_int_distribution<int64_t> bytes(1, 12);
  std::uniform_real_distribution<double> seconds(0.5, 3.0);
  ChainCosts c;
  c.batch_size = 8;
  int64_t input = bytes(rng) * unit;
  for (int64_t s = 0; s < stages; ++s) {
    StageCost st;
    st.input_bytes = input;
    st.output_bytes = s + 1 == stages ? unit : bytes(rng) * unit;
    st.saved_bytes = st.output_bytes + bytes(rng) * unit;
    st.forward_transient = bytes(rng) / 3 * unit;
    st.backward_transient = st.input_bytes + bytes(rng) / 3 * unit;
    st.forward_seconds = seconds(rng);
    st.backward_seconds = 2 * seconds(rng);
    c.stages.push_back(st);
    input = st.output_bytes;
  }
  return c;
}

using Nodes = std::vector<ScheduleNode>;

// All schedules of [s, t). A checkpoint never ends a range: at the top level that keeps the
// classifier stored, inside a recompute it would only re-run the same range.
std::vector<Nodes> all_schedules(int64_t s, int64_t t) {
  if (s == t) return {Nodes{}};
  std::vector<Nodes> out;
  for (const Nodes& rest : all_schedules(s + 1, t)) {
    Nodes nodes{store(s)};
    nodes.insert(nodes.end(), rest.begin(), rest.end());
    out.push_back(nodes);
  }
  for (int64_t end = s + 1; end < t; ++end)
    for (const Nodes& inner : all_schedules(s, end))
      for (const Nodes& rest : all_schedules(end, t)) {
        Nodes nodes{checkpoint(s, end, inner)};
        nodes.insert(nodes.end(), rest.begin(), rest.end());
        out.push_back(nodes);
      }
  return out;
}

// The top-level offload variants of a schedule: any checkpoint that follows a checkpoint may
// offload its input when the transfer hides.
std::vector<Nodes> offload_variants(const Nodes& nodes, const ChainCosts& costs) {
  std::vector<Nodes> out{nodes};
  for (size_t i = 1; i < nodes.size(); ++i) {
    if (nodes[i].kind != ScheduleNode::Kind::Checkpoint ||
        nodes[i - 1].kind != ScheduleNode::Kind::Checkpoint ||
        !transfer_hideable(costs, nodes[i].first))
      continue;
    const size_t count = out.size();
    for (size_t k = 0; k < count; ++k) {
      Nodes v = out[k];
      v[i].offload_input = true;
      out.push_back(v);
    }
  }
  return out;
}

double best_feasible_seconds(const ChainCosts& costs, int64_t budget, bool offload) {
  double best = std::numeric_limits<double>::infinity();
  for (const Nodes& nodes : all_schedules(0, costs.size())) {
    const std::vector<Nodes> variants = offload ? offload_variants(nodes, costs) : std::vector<Nodes>{nodes};
    for (const Nodes& v : variants) {
      CheckpointSchedule s;
      s.nodes = v;
      const SchedulePrediction p = predict(s, costs);
      if (p.activation_peak <= budget) best = std::min(best, p.seconds);
    }
  }
  return best;
}

}  // namespace

TEST_CASE("the checkpoint DP finds the fastest schedule that fits, as brute force does",
          "[recompute][unit]") {
  std::mt19937 rng(11);
  const int64_t unit = 1000;
  for (int trial = 0; trial < 60; ++trial) {
    const int64_t stages = 2 + trial % 4;   // up to 4 units and the classifier
    ChainCosts costs = random_chain_costs(rng, stages, unit);
    const bool offload = trial % 2 == 1;
    costs.copy_bytes_per_second = offload ? 1e4 : 0;   // hides some transfers, not all
    const CheckpointSchedule all = store_all_schedule(costs);
    const int64_t slots = std::uniform_int_distribution<int64_t>(
        5, all.predicted_activation_peak / unit + 2)(rng);
    const int64_t budget = slots * unit;
    INFO("trial " << trial << ", budget " << budget << ", offload " << offload);
    const double brute = best_feasible_seconds(costs, budget, offload);
    const auto dp = optimal_schedule(costs, budget, offload, static_cast<int>(slots));
    REQUIRE(dp.has_value() == std::isfinite(brute));
    if (!dp) continue;
    INFO("dp schedule " << dp->describe());
    CHECK(dp->predicted_seconds == Approx(brute).epsilon(1e-9));
    CHECK(dp->predicted_activation_peak <= budget);
  }
}

TEST_CASE("the checkpoint DP is never slower than the sqrt(n) rule", "[recompute][unit]") {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t stages = 4 + trial % 10;
    const ChainCosts costs = random_chain_costs(rng, stages, 997);
    const CheckpointSchedule sqrt_rule = sqrt_schedule(costs);
    const int64_t budget = static_cast<int64_t>(sqrt_rule.predicted_activation_peak * 1.05);
    const auto dp = optimal_schedule(costs, budget, false);
    INFO("trial " << trial << ": sqrt " << sqrt_rule.describe());
    REQUIRE(dp.has_value());
    CHECK(dp->predicted_seconds <= sqrt_rule.predicted_seconds + 1e-9);
    CHECK(dp->predicted_activation_peak <= budget);
  }
}

TEST_CASE("schedules at the extremes: everything stored, nothing fits", "[recompute][unit]") {
  std::mt19937 rng(5);
  const ChainCosts costs = random_chain_costs(rng, 7, 1000);
  const CheckpointSchedule all = store_all_schedule(costs);
  const auto loose = optimal_schedule(costs, all.predicted_activation_peak * 2, false);
  REQUIRE(loose.has_value());
  CHECK(loose->recomputed_stages() == 0);
  CHECK(loose->predicted_seconds == Approx(all.predicted_seconds));
  CHECK_FALSE(optimal_schedule(costs, 1000, false).has_value());
  CHECK_FALSE(optimal_schedule(costs, 0, false).has_value());

  const CheckpointSchedule sqrt_rule = sqrt_schedule(costs);   // 6 units: segments of 3
  CHECK(sqrt_rule.describe() == "c[0-2] 3 4 5 6");
  CHECK(sqrt_rule.recomputed_stages() == 3);
}

TEST_CASE("offloading is never slower than checkpointing, and equal when nothing hides",
          "[recompute][unit]") {
  std::mt19937 rng(21);
  int offloaded_somewhere = 0;
  for (int trial = 0; trial < 30; ++trial) {
    ChainCosts costs = random_chain_costs(rng, 6 + trial % 6, 1000);
    const int64_t budget = sqrt_schedule(costs).predicted_activation_peak;
    costs.copy_bytes_per_second = 0;
    const auto checkpointed = optimal_schedule(costs, budget, false);
    const auto nothing_hides = optimal_schedule(costs, budget, true);
    REQUIRE(checkpointed.has_value() == nothing_hides.has_value());
    if (!checkpointed) continue;
    CHECK(nothing_hides->predicted_seconds == Approx(checkpointed->predicted_seconds));
    CHECK(nothing_hides->offloaded_bytes == 0);
    costs.copy_bytes_per_second = 1e12;   // every transfer hides
    const auto offloaded = optimal_schedule(costs, budget, true);
    REQUIRE(offloaded.has_value());
    CHECK(offloaded->predicted_seconds <= checkpointed->predicted_seconds + 1e-9);
    CHECK(offloaded->predicted_activation_peak <= budget);
    if (offloaded->offloaded_bytes > 0) ++offloaded_somewhere;
  }
  CHECK(offloaded_somewhere > 0);
}

TEST_CASE("schedules and costs round-trip through JSON", "[recompute][unit]") {
  std::mt19937 rng(9);
  ChainCosts costs = random_chain_costs(rng, 6, 1000);
  costs.copy_bytes_per_second = 5e3;
  costs.state_bytes = 1234;
  const ChainCosts back = ChainCosts::from_json(costs.to_json());
  CHECK(back.to_json() == costs.to_json());
  const CheckpointSchedule schedule = least_memory_schedule(costs, true);
  CHECK(schedule.recomputed_stages() > 0);
  const CheckpointSchedule again = CheckpointSchedule::from_json(schedule.to_json());
  CHECK(again.to_json() == schedule.to_json());
  CHECK(again.describe() == schedule.describe());
}
