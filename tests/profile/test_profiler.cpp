#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "neuroflux/local/local_model.h"
#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/models/model_zoo.h"
#include "neuroflux/profile/profiler.h"
#include "neuroflux/util/intra_op_threads.h"

using namespace neuroflux;

namespace {

LocalModel small_model() {
  ModelConfig mc;
  mc.name = "simplecnn";
  mc.width = 0.25;
  auto chain = build_model(mc, {1, 16, 16}, 4);
  return LocalModel(chain, fixed_head_specs(chain->size(), 8));
}

}  // namespace

TEST_CASE("profiling measures every unit and leaves the weights as they were",
          "[profile][unit]") {
  torch::manual_seed(3);
  LocalModel model = small_model();
  std::vector<at::Tensor> before;
  for (const auto& p : model->parameters()) before.push_back(p.detach().clone());

  ProfilerOptions options;
  options.batch_sizes = {4, 16};
  options.repeats = 1;
  options.unit_modes = false;
  Profiler profiler(options, torch::kCPU);
  const Profile profile = profiler.profile(model);

  REQUIRE(static_cast<int64_t>(profile.units.size()) == model->size());
  for (const UnitProfile& u : profile.units) {
    int64_t params = 0;
    for (const auto& p : model->unit_and_head_parameters(u.unit)) params += p.numel() * 4;
    CHECK(u.param_bytes == params);
    CHECK(u.grad_bytes == params);
    CHECK(u.optimizer_bytes == params);  // SGD with momentum: one buffer per parameter
    REQUIRE(u.transient_peaks.size() == 2);
    // A step on four times the batch keeps more activations alive.
    CHECK(u.transient_peaks[1].second > u.transient_peaks[0].second);
    CHECK(u.transient_per_sample > 0);
    for (const auto& [batch, seconds] : u.step_seconds) CHECK(seconds > 0);
  }
  const auto after = model->parameters();
  REQUIRE(after.size() == before.size());
  for (size_t i = 0; i < before.size(); ++i) CHECK(torch::equal(after[i].detach(), before[i]));
}

TEST_CASE("a traced profile says what each step's measured transient is made of",
          "[profile][unit]") {
  // The meter counts what is allocated after its allocator is installed: install it before the
  // model is built, so the weights are among what was live before each step (with a random test
  // order this case may be the first to touch the meter).
  MemoryMeter::of(torch::kCPU);
  torch::manual_seed(3);
  LocalModel model = small_model();
  ProfilerOptions options;
  options.batch_sizes = {4, 16};
  options.repeats = 1;
  options.unit_modes = false;
  options.trace_allocations = true;
  Profiler profiler(options, torch::kCPU);
  const Profile profile = profiler.profile(model);
  for (const UnitProfile& u : profile.units) {
    INFO("unit " << u.unit);
    REQUIRE(u.allocations.size() == u.transient_peaks.size());
    for (size_t i = 0; i < u.allocations.size(); ++i) {
      const AllocationsAtPeak& traced = u.allocations[i];
      CHECK(traced.batch == u.transient_peaks[i].first);
      // The same step as the measured one, in steady state: the same peak to the byte.
      CHECK(traced.traced_bytes == u.transient_peaks[i].second);
      int64_t sum = 0;
      for (const auto& o : traced.by_operator) sum += o.bytes;
      CHECK(sum == traced.traced_bytes);
      CHECK(traced.before_bytes >= u.static_bytes());
    }
  }
  // The trace travels with the profile's JSON.
  const Profile again = Profile::from_json(profile.to_json());
  REQUIRE(again.units[0].allocations.size() == profile.units[0].allocations.size());
  CHECK(again.units[0].allocations[0].by_operator.size() ==
        profile.units[0].allocations[0].by_operator.size());
  CHECK(again.to_json() == profile.to_json());
  CHECK(profile.allocations_table(3).find("| operator | bytes | allocations |") !=
        std::string::npos);
}

TEST_CASE("block_threads auto: every unit's plain step is measured again at one thread",
          "[profile][unit]") {
  torch::manual_seed(3);
  LocalModel model = small_model();
  const IntraOpThreads run_threads(2);
  ProfilerOptions options;
  options.batch_sizes = {4, 16};
  options.repeats = 1;
  options.unit_modes = false;
  options.fewer_threads = true;
  const Profile profile = Profiler(options, torch::kCPU).profile(model);
  CHECK(at::get_num_threads() == 2);  // the measurement at one thread hands the count back
  CHECK(profile.threads == 2);
  REQUIRE(profile.fewer_thread_counts() == std::vector<int64_t>{1});
  for (const UnitProfile& u : profile.units) {
    INFO("unit " << u.unit);
    const UnitModeProfile* one = u.plain_at(1);
    REQUIRE(one != nullptr);
    CHECK(one->mode == "plain");
    REQUIRE(one->transient_peaks.size() == u.transient_peaks.size());
    for (const auto& [batch, bytes] : one->transient_peaks) CHECK(bytes > 0);
    for (const auto& [batch, seconds] : one->step_seconds) CHECK(seconds > 0);
  }
  CHECK(profile.table().find("At 1 thread(s) instead of 2") != std::string::npos);
  CHECK(Profile::from_json(profile.to_json()).to_json() == profile.to_json());
}
