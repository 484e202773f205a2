#include <catch2/catch.hpp>

#include "neuroflux/models/unit_groups.h"
#include "neuroflux/plan/module_choice.h"
#include "plan/planner_test_util.h"

using namespace neuroflux;

namespace {

/// Six built units in two stages of three: 32x32 maps with 16 channels, then 16x16 with 32. A
/// module's step keeps all its units' maps (they train together); its weights add up.
Profile grouped_profile(const std::vector<int64_t>& sizes) {
  Profile p;
  p.model = "synthetic";
  p.device = "cpu";
  p.num_classes = 10;
  int64_t built = 0;
  for (size_t m = 0; m < sizes.size(); ++m) {
    UnitProfile u;
    u.unit = static_cast<int64_t>(m);
    double per_sample = 0, params = 0;
    for (int64_t k = 0; k < sizes[m]; ++k, ++built) {
      const int64_t c = built < 3 ? 16 : 32, hw = built < 3 ? 32 : 16;
      per_sample += 3.0 * 4 * c * hw * hw;
      params += 4.0 * 9 * c * c;
      u.output_shape = {c, hw, hw};
    }
    u.input_shape = m == 0 ? std::vector<int64_t>{3, 32, 32} : p.units.back().output_shape;
    u.head = m + 1 == sizes.size() ? AuxHeadSpec{1, 0, true} : AuxHeadSpec{1, 32, false};
    u.param_bytes = static_cast<int64_t>(params);
    u.grad_bytes = u.param_bytes;
    u.optimizer_bytes = u.param_bytes;
    u.transient_static = 1 << 16;
    u.transient_per_sample = per_sample;
    u.step_seconds = {{8, 1e-4 * sizes[m]}, {128, 1e-4 * sizes[m]}};
    u.forward_seconds_per_sample = 3e-5 * sizes[m];
    p.units.push_back(u);
  }
  return p;
}

}  // namespace

TEST_CASE("split_module halves one module", "[plan][unit]") {
  CHECK(split_module({3}, 0) == std::vector<int64_t>{2, 1});
  CHECK(split_module({4, 2}, 0) == std::vector<int64_t>{2, 2, 2});
  CHECK(split_module({1, 2}, 1) == std::vector<int64_t>{1, 1, 1});
  CHECK_THROWS(split_module({1, 2}, 0));
}

TEST_CASE("auto modules keep the stages unless a stage trains only at a small batch",
          "[plan][unit]") {
  const std::vector<int64_t> stages{3, 3};
  int64_t profiled = 0;
  auto profile_of = [&](const std::vector<int64_t>& sizes) {
    ++profiled;
    return grouped_profile(sizes);
  };
  const int64_t min_batch = auto_module_min_batch(test::planner_inputs(std::nullopt));
  CHECK(min_batch == 32);

  SECTION("without a budget the stages stand") {
    const ModuleChoice choice =
        choose_modules(stages, test::planner_inputs(std::nullopt), profile_of);
    CHECK(choice.sizes == stages);
    CHECK(choice.rounds == 1);
    CHECK(profiled == 1);
  }
  SECTION("an ample budget keeps the stages") {
    const ModuleChoice choice =
        choose_modules(stages, test::planner_inputs(int64_t{4} << 30), profile_of);
    CHECK(choice.sizes == stages);
  }
  SECTION("a budget the first stage fits only at a tiny batch splits it, and only it") {
    // Between what each stage needs whole at the smallest batch worth keeping: the light stage
    // fits, the heavy one does not (largest_batch keeps 10% headroom).
    const Planner unbounded(grouped_profile(stages), test::planner_inputs(std::nullopt));
    const double heavy = unbounded.predicted_peak(0, 0, min_batch);
    const double light = unbounded.predicted_peak(1, 1, min_batch);
    REQUIRE(light < heavy);
    const auto budget = static_cast<int64_t>((heavy + light) / 2 / 0.9);
    const ModuleChoice choice = choose_modules(stages, test::planner_inputs(budget), profile_of);
    REQUIRE(choice.sizes.size() > 2);
    CHECK(choice.sizes.back() == 3);  // the light stage stays whole
    int64_t total = 0;
    for (auto s : choice.sizes) total += s;
    CHECK(total == 6);
    const Planner planner(choice.profile, test::planner_inputs(budget));
    for (size_t i = 0; i < choice.sizes.size(); ++i) {
      INFO("module " << i << " of " << choice.sizes[i] << " units");
      const auto m = static_cast<int64_t>(i);
      if (choice.sizes[i] > 1) CHECK(planner.largest_batch(m, m, true) >= min_batch);
    }
    // Whole, the first stage would have trained below the floor: the split was needed.
    const Planner whole(grouped_profile(stages), test::planner_inputs(budget));
    CHECK(whole.largest_batch(0, 0, true) < min_batch);
    CHECK(choice.rounds == profiled);
  }
}
