#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <filesystem>

#include "neuroflux/train/run.h"
#include "neuroflux/util/atomic_file.h"
#include "train/train_test_util.h"

using namespace neuroflux;
using neuroflux::test::fresh_dir;
using neuroflux::test::synthetic_config;

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
