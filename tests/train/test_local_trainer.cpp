#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "neuroflux/exit/exported_model.h"
#include "neuroflux/train/run.h"
#include "train/train_test_util.h"

using namespace neuroflux;
using neuroflux::test::fresh_dir;
using neuroflux::test::synthetic_config;

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

TEST_CASE("exit_ensemble: the last two heads averaged when validation prefers them",
          "[local][integration]") {
  Config config = synthetic_config("local");
  config.model.name = "simplecnn";
  config.model.width = 0.25;
  config.neuroflux.aux_width = 16;
  config.neuroflux.exit_ensemble = true;
  config.output.dir = fresh_dir("local-ensemble");
  const Report report = run_training(config, false);
  const auto& pairs = report.extra.at("pair_val_accuracy");
  REQUIRE(pairs.size() == 3);  // simplecnn: 4 units; only the last pair is measured
  CHECK(pairs[0].is_null());
  REQUIRE(pairs[2].is_number());
  const double classifier = report.history.back().head_val_accuracy.back();
  const auto& chosen = report.extra.at("exit_ensemble");
  // select_exit at equal depth: the pair only when more accurate than the classifier alone.
  CHECK(chosen.is_null() == (pairs[2].get<double>() <= classifier));
  ExportDescription description;
  auto exported = load_exported(config.output.dir + "/model.pt", &description);
  CHECK(parameter_count(exported) == report.final.params);
  CHECK(description.next_head.has_value() == !chosen.is_null());
  if (!chosen.is_null()) {
    CHECK(chosen.at("units") == nlohmann::json{2, 3});
    CHECK(report.final.exit_unit == 2);
    CHECK(report.final.val_accuracy == pairs[2].get<double>());
  }
}
