// Every method measures the same phases the same way: report.json's phase_peaks names them and
// peak_memory_bytes is their maximum (MeasuredPhase). A phase that stops being measured, or a
// peak taken outside the phases, fails here.
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "neuroflux/src/train/training_loop.h"
#include "neuroflux/train/run.h"
#include "neuroflux/util/atomic_file.h"
#include "train/train_test_util.h"

using namespace neuroflux;
using neuroflux::test::fresh_dir;
using neuroflux::test::synthetic_config;

namespace {

std::set<std::string> names(const PhasePeaks& peaks) {
  std::set<std::string> out;
  for (const auto& entry : peaks.phases()) out.insert(entry.first);
  return out;
}

/// The report's peak is the largest phase's, within the budget, in the file as in memory.
void check_peaks(const Report& report, const Config& config) {
  REQUIRE_FALSE(report.phase_peaks.empty());
  // No phase ran without the budget, nor under a looser limit.
  for (const auto& [name, bytes] : report.phase_peaks.phases()) {
    INFO("phase " << name);
    REQUIRE(report.phase_peaks.limits().count(name) == 1);
    CHECK(report.phase_peaks.limits().at(name) == config.memory.budget);
  }
  CHECK(report.peak_memory_bytes == report.phase_peaks.max());
  CHECK(report.peak_memory_bytes <= *config.memory.budget);
  // Training holds weights, gradients and a batch's activations on the device. (A phase may
  // hold nothing there: NeuroFlux checkpoints with every block back on the host.)
  CHECK(report.phase_peaks.phases().at("train") > 0);
  const auto written = nlohmann::json::parse(read_file(config.output.dir + "/report.json"));
  CHECK(written.at("peak_memory_bytes").get<int64_t>() == report.peak_memory_bytes);
  int64_t largest = 0;
  for (const auto& item : written.at("phase_peaks").items())
    largest = std::max(largest, item.value().get<int64_t>());
  CHECK(largest == report.peak_memory_bytes);
  CHECK(written.at("phase_peaks").size() == report.phase_peaks.phases().size());
}

int64_t plain_backprop_peak() {
  static const int64_t peak = [] {
    Config bp = synthetic_config("backprop");
    bp.train.epochs = 1;
    bp.output.dir = fresh_dir("phases-bp-free");
    return run_training(bp, false).peak_memory_bytes;
  }();
  return peak;
}

}  // namespace

TEST_CASE("every whole-network method reports the same phases, its peak their maximum",
          "[train][integration]") {
  const auto [method, strategy] = GENERATE(std::pair<std::string, std::string>{"backprop", "none"},
                                           std::pair<std::string, std::string>{"backprop", "checkpoint"},
                                           std::pair<std::string, std::string>{"local", "none"});
  INFO("method " << method << ", memory.strategy " << strategy);
  Config config = synthetic_config(method);
  config.train.epochs = 1;
  config.memory.strategy = strategy;
  config.memory.budget = 2 * plain_backprop_peak();
  config.output.dir = fresh_dir("phases-" + method + "-" + strategy);
  const Report report = run_training(config, false);

  std::set<std::string> expected = {"batch_trials", "train", "validate", "checkpoint", "test",
                                    "export"};
  if (strategy != "none") expected.insert("profile");  // the chosen batch's schedule costs
  CHECK(names(report.phase_peaks) == expected);
  check_peaks(report, config);
}

TEST_CASE("neuroflux reports every phase it ran, profiling and caching included",
          "[neuroflux][integration]") {
  Config config = synthetic_config("neuroflux");
  config.train.epochs = 1;
  config.neuroflux.progressive_exit = false;
  config.memory.budget = plain_backprop_peak() / 2;
  config.output.dir = fresh_dir("phases-neuroflux");
  const Report report = run_training(config, false);
  REQUIRE(report.blocks.size() >= 2);  // so a cache was written

  const std::set<std::string> expected = {"profile", "train",      "validate", "cache_write",
                                          "checkpoint", "test", "export"};
  CHECK(names(report.phase_peaks) == expected);
  check_peaks(report, config);
  for (const auto& b : report.blocks) CHECK(b.peak_memory_bytes <= report.peak_memory_bytes);
}

TEST_CASE("a checkpoint from before phase peaks gives its peak back as before_resume",
          "[train][unit]") {
  // Backprop and local learning kept "peak_bytes", NeuroFlux "peak": the peak up to the kill.
  const PhasePeaks old_loop = checkpoint_phase_peaks({{"peak_bytes", 12345}}, "peak_bytes");
  CHECK(old_loop.phases().at("before_resume") == 12345);
  CHECK(old_loop.max() == 12345);
  const PhasePeaks none = checkpoint_phase_peaks({{"peak", 0}}, "peak");
  CHECK(none.empty());
  // A checkpoint with phase peaks gives them back as they were.
  LoopState state;
  state.phase_peaks.record("train", 700);
  state.phase_peaks.record("test", 900);
  state.phase_peaks.record_probe("batch_trial_needs", 5000);
  const LoopState back = LoopState::from_json(state.to_json());
  CHECK(back.phase_peaks.phases() == state.phase_peaks.phases());
  CHECK(back.phase_peaks.probes() == state.phase_peaks.probes());
  CHECK(back.phase_peaks.max() == 900);
}
