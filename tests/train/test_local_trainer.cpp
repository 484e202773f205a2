#include <catch2/catch.hpp>
#include <torch/torch.h>

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
