#include <catch2/catch.hpp>

#include <filesystem>

#include "neuroflux/report/report.h"
#include "neuroflux/util/atomic_file.h"

TEST_CASE("report.json round-trips and follows the contract", "[report][unit]") {
  neuroflux::Report r;
  r.method = "neuroflux";
  r.model = "vgg11";
  r.dataset = "fashion-mnist";
  r.device = "cpu";
  r.budget_bytes = 67108864;
  r.peak_memory_bytes = 61234176;
  r.train_seconds = 412.5;
  r.epochs = 10;
  r.full_model_params = 9231114;
  r.final = {0.905, 0.901, 612394, 5};
  neuroflux::BlockReport b;
  b.first_unit = 0;
  b.last_unit = 2;
  b.batch_size = 64;
  b.epochs = 4;
  b.predicted_peak_bytes = 60000000;
  b.peak_memory_bytes = 58720256;
  b.seconds = 120.1;
  b.cache_bytes = 3211264000;
  b.extra["cache_seconds"] = 3.5;
  r.blocks.push_back(b);
  neuroflux::HistoryEntry h;
  h.block = 0;
  h.epoch = 1;
  h.train_loss = 0.61;
  h.val_accuracy = 0.83;
  h.seconds = 30.2;
  h.epoch_cpu = {55.5, 0.75, 3456};
  r.history.push_back(h);
  r.extra["world_size"] = 1;
  r.phase_peaks.record("train", 58720256);
  r.phase_peaks.record("test", 61234176);
  r.phase_peaks.record_probe("batch_trial_needs", 90000000);

  const nlohmann::json j = r.to_json();
  for (const char* key : {"neuroflux_version", "method", "model", "dataset", "device",
                          "budget_bytes", "peak_memory_bytes", "train_seconds", "epochs",
                          "full_model_params", "final", "blocks", "history"})
    CHECK(j.contains(key));
  CHECK(j["blocks"][0]["units"] == nlohmann::json::array({0, 2}));
  CHECK(j["final"]["exit_unit"] == 5);
  CHECK(j["blocks"][0]["cache_seconds"] == 3.5);
  CHECK(j["history"][0]["epoch_system_seconds"] == 0.75);
  CHECK(j["history"][0]["epoch_minor_faults"] == 3456);
  CHECK(j["phase_peaks"] == nlohmann::json({{"test", 61234176}, {"train", 58720256}}));
  CHECK(j["unbudgeted_probe_peaks"] == nlohmann::json({{"batch_trial_needs", 90000000}}));
  CHECK_FALSE(j.contains("extra"));

  const neuroflux::Report back = neuroflux::Report::from_json(j);
  CHECK(back.to_json() == j);
  CHECK(back.phase_peaks.max() == 61234176);
  CHECK(back.extra.size() == 1);  // phase peaks are fields of their own, not extras

  r.budget_bytes.reset();
  CHECK(r.to_json()["budget_bytes"].is_null());

  const std::string dir = (std::filesystem::temp_directory_path() / "neuroflux-report-test").string();
  r.write(dir);
  CHECK(nlohmann::json::parse(neuroflux::read_file(dir + "/report.json")) == r.to_json());
  CHECK(neuroflux::read_file(dir + "/history.csv").rfind("block,epoch,train_loss", 0) == 0);
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    CHECK(entry.path().filename().string().find(".tmp") == std::string::npos);
  std::filesystem::remove_all(dir);
}
