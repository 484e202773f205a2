// Multi-process runs on loopback through the CLI (--nproc), each bounded by `timeout`: data
// parallel ends with the weights of one process training on the combined batch, and the block
// pipeline teaches local learning's units what sequential local learning teaches them.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "neuroflux/exit/exported_model.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("neuroflux-dist-" + name + "-" +
                                                    std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

/// A small synthetic problem whose training split (576 of 640) divides into global batches of 32.
std::string write_config(const std::string& dir, const std::string& method) {
  const json config = {
      {"method", method}, {"seed", 5}, {"threads", 1},
      {"model", {{"name", "simplecnn"}, {"width", 0.25}, {"batch_norm", false}}},
      {"data", {{"name", "synthetic"}, {"image_size", 12}, {"channels", 1}, {"num_classes", 4},
                {"train_size", 640}, {"test_size", 64}, {"val_fraction", 0.1}}},
      {"train", {{"epochs", 2}, {"batch_size", 32}, {"lr", 0.05}}},
      {"neuroflux", {{"aux", "fixed"}, {"aux_width", 8}}},
      {"distributed", {{"timeout", 30}}}};
  const std::string path = dir + "/config.json";
  std::ofstream(path) << config.dump(2);
  return path;
}

int run_cli(const std::string& args, int limit_seconds) {
  const std::string command = "NEUROFLUX_QUIET=1 timeout -k 5 " + std::to_string(limit_seconds) +
                              " " + NEUROFLUX_CLI_PATH + " " + args + " > /dev/null";
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

json read_json(const std::string& path) { return json::parse(std::ifstream(path)); }

double max_weight_difference(const std::string& a, const std::string& b) {
  const auto x = neuroflux::load_exported(a, nullptr)->parameters();
  const auto y = neuroflux::load_exported(b, nullptr)->parameters();
  REQUIRE(x.size() == y.size());
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i)
    worst = std::max(worst, (x[i] - y[i]).abs().max().item<double>());
  return worst;
}

}  // namespace

TEST_CASE("data parallel on 2 ranks equals one process on the combined batch",
          "[distributed][integration]") {
  for (const std::string method : {"backprop", "local"}) {
    SECTION(method) {
      const std::string dir = fresh_dir("data-" + method);
      const std::string config = write_config(dir, method);
      // 2 ranks x 16 samples against 1 process x 32: the same global batches, in one order.
      REQUIRE(run_cli("train --config " + config + " --out " + dir + "/two --nproc 2" +
                      " --set train.batch_size=16", 120) == 0);
      REQUIRE(run_cli("train --config " + config + " --out " + dir + "/one", 120) == 0);
      const double diff = max_weight_difference(dir + "/two/model.pt", dir + "/one/model.pt");
      INFO(method << ": largest weight difference " << diff);
      CHECK(diff < 1e-4);

      const json report = read_json(dir + "/two/report.json");
      CHECK(report.at("world_size") == 2);
      CHECK(report.at("rank_peak_memory_bytes").size() == 2);
      // Rank 1 writes only its own checkpoint, under rank-1/; its weights are rank 0's, bit for
      // bit (the serialized files are identical).
      CHECK(fs::exists(dir + "/two/rank-1/checkpoint/state.json"));
      const auto bytes = [](const std::string& path) {
        std::ifstream in(path, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), {});
      };
      const std::string rank0 = bytes(dir + "/two/checkpoint/step-2-model.pt");
      CHECK_FALSE(rank0.empty());
      CHECK(rank0 == bytes(dir + "/two/rank-1/checkpoint/step-2-model.pt"));
      CHECK_FALSE(fs::exists(dir + "/two/rank-1/report.json"));
      fs::remove_all(dir);
    }
  }
}

TEST_CASE("pipeline on 2 ranks trains local learning's units as sequential local learning does",
          "[distributed][integration]") {
  const std::string dir = fresh_dir("pipeline");
  const std::string config = write_config(dir, "local");
  REQUIRE(run_cli("train --config " + config + " --out " + dir + "/pipe --nproc 2" +
                  " --set distributed.mode=pipeline", 120) == 0);
  REQUIRE(run_cli("train --config " + config + " --out " + dir + "/seq", 120) == 0);
  const json pipe = read_json(dir + "/pipe/report.json");
  const json seq = read_json(dir + "/seq/report.json");
  const auto pipe_heads = pipe.at("head_val_accuracy").get<std::vector<double>>();
  const auto seq_heads = seq.at("head_val_accuracy").get<std::vector<double>>();
  REQUIRE(pipe_heads.size() == seq_heads.size());
  for (size_t i = 0; i < pipe_heads.size(); ++i) {
    INFO("unit " << i << ": pipeline " << pipe_heads[i] << ", sequential " << seq_heads[i]);
    CHECK(std::abs(pipe_heads[i] - seq_heads[i]) <= 0.01);
  }
  CHECK(pipe.at("world_size") == 2);
  const auto stages = pipe.at("pipeline").at("stages");
  REQUIRE(stages.size() == 2);
  CHECK(stages[0].at("units")[0] == 0);
  CHECK(stages[1].at("units")[1] == static_cast<int64_t>(seq_heads.size()) - 1);
  CHECK(max_weight_difference(dir + "/pipe/model.pt", dir + "/seq/model.pt") < 1e-4);
  fs::remove_all(dir);
}

namespace {

// NeuroFlux settings under which its sequential run trains every unit at one batch, as the
// pipeline does: no budget and every unit at full epochs (one block), no early stop or
// progressive exit, a float32 cache.
const std::string kNeuroFluxSets =
    " --set data.train_size=1280 --set train.epochs=6 --set train.max_batch_size=32"
    " --set neuroflux.progressive_exit=false --set neuroflux.block_patience=100"
    " --set neuroflux.shallow_epoch_fraction=1"
    " --set neuroflux.cache.dtype=float32";

std::string cli_output(const std::string& args) {
  const std::string command = "NEUROFLUX_QUIET=1 timeout -k 5 60 " +
                              std::string(NEUROFLUX_CLI_PATH) + " " + args + " 2>&1";
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) out += buffer;
  ::pclose(pipe);
  return out;
}

}  // namespace

TEST_CASE("NeuroFlux in pipeline mode reaches sequential NeuroFlux's head accuracies",
          "[distributed][integration]") {
  const std::string dir = fresh_dir("nf-pipeline");
  const std::string config = write_config(dir, "neuroflux");
  REQUIRE(run_cli("train --config " + config + " --out " + dir + "/pipe --nproc 2" +
                  " --set distributed.mode=pipeline" + kNeuroFluxSets, 120) == 0);
  REQUIRE(run_cli("train --config " + config + " --out " + dir + "/seq" + kNeuroFluxSets, 120) == 0);
  const json pipe = read_json(dir + "/pipe/report.json");
  const json seq = read_json(dir + "/seq/report.json");
  const auto pipe_heads = pipe.at("head_val_accuracy").get<std::vector<double>>();
  const auto seq_heads = seq.at("head_val_accuracy").get<std::vector<double>>();
  REQUIRE(pipe_heads.size() == seq_heads.size());
  for (size_t i = 0; i < pipe_heads.size(); ++i) {
    INFO("unit " << i << ": pipeline " << pipe_heads[i] << ", sequential " << seq_heads[i]);
    CHECK(std::abs(pipe_heads[i] - seq_heads[i]) <= 0.01);
  }
  CHECK(seq.at("final").at("val_accuracy").get<double>() > 0.5);   // learnt, not chance (0.25)
  CHECK(pipe.at("pipeline").at("stages").size() == 2);
  fs::remove_all(dir);
}

TEST_CASE("NeuroFlux in data-parallel mode trains on sharded caches and reports every rank",
          "[distributed][integration]") {
  const std::string dir = fresh_dir("nf-data");
  const std::string config = write_config(dir, "neuroflux");
  REQUIRE(run_cli("train --config " + config + " --out " + dir + "/two --nproc 2" +
                  kNeuroFluxSets, 120) == 0);
  REQUIRE(run_cli("train --config " + config + " --out " + dir + "/one" + kNeuroFluxSets, 120) == 0);
  const json two = read_json(dir + "/two/report.json");
  const json one = read_json(dir + "/one/report.json");
  CHECK(two.at("world_size") == 2);
  CHECK(two.at("rank_peak_memory_bytes").size() == 2);
  // Each rank trains on its own half, so the runs differ, but both learn the task.
  CHECK(two.at("final").at("val_accuracy").get<double>() > 0.5);
  CHECK(std::abs(two.at("final").at("val_accuracy").get<double>() -
                 one.at("final").at("val_accuracy").get<double>()) < 0.15);
  CHECK_FALSE(fs::exists(dir + "/two/rank-1/report.json"));
  fs::remove_all(dir);
}

TEST_CASE("plan --world-size prints the stage placement with predicted times and memory",
          "[distributed][integration]") {
  const std::string dir = fresh_dir("plan");
  const std::string config = write_config(dir, "local");
  const std::string out = cli_output("plan --config " + config + " --world-size 2");
  INFO(out);
  CHECK(out.find("rank  units") != std::string::npos);
  CHECK(out.find("<- bottleneck") != std::string::npos);
  const std::string too_many = cli_output("plan --config " + config + " --world-size 9");
  INFO(too_many);
  CHECK(too_many.find("rank") != std::string::npos);   // refused, naming the ranks
  fs::remove_all(dir);
}
