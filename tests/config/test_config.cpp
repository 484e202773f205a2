#include <catch2/catch.hpp>

#include "config/config_test_util.h"
#include <nlohmann/json.hpp>

#include <fstream>

#include "neuroflux/config/config.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/util/size_format.h"

using neuroflux::Config;
using neuroflux::ConfigError;
using nlohmann::json;


TEST_CASE("sizes parse the way people write them", "[config][unit]") {
  CHECK(*neuroflux::parse_size("64MiB") == 64LL << 20);
  CHECK(*neuroflux::parse_size("1.5GiB") == 3LL << 29);
  CHECK(*neuroflux::parse_size("64KiB") == 65536);
  CHECK(*neuroflux::parse_size("123456") == 123456);
  CHECK(*neuroflux::parse_size("2 MB") == 2000000);
  CHECK(*neuroflux::parse_size("512kib") == 524288);
  CHECK_FALSE(neuroflux::parse_size("none").has_value());
  CHECK_THROWS_AS(neuroflux::parse_size("12 parsecs"), std::invalid_argument);
  CHECK_THROWS_AS(neuroflux::parse_size("-5MiB"), std::invalid_argument);
  CHECK_THROWS_AS(neuroflux::parse_size("lots"), std::invalid_argument);
  // Below one byte once rounded: refused, not a size of 0 (which config.json could not hold).
  CHECK_THROWS_AS(neuroflux::parse_size("0.4"), std::invalid_argument);
  CHECK(*neuroflux::parse_size("0.5") == 1);
  CHECK(neuroflux::format_size(64LL << 20) == "64.0 MiB");
}

TEST_CASE("defaults, values and round trip", "[config][unit]") {
  const Config d = Config::from_json(json::object());
  CHECK(d.method == "backprop");
  CHECK_FALSE(d.memory.budget.has_value());
  const Config c = Config::from_json(json::parse(R"({
    "method": "neuroflux", "seed": 3,
    "model": {"name": "vgg16", "width": 0.25, "batch_norm": false},
    "data": {"name": "synthetic", "image_size": 16, "channels": 1},
    "memory": {"budget": "64MiB"},
    "train": {"epochs": 2, "batch_size": "auto", "optimizer": "adam", "lr_reference_batch": 64},
    "neuroflux": {"cache": {"where": "disk"}, "exit_patience": 3, "shallow_epoch_fraction": 0.25}
  })"));
  CHECK(c.method == "neuroflux");
  CHECK(c.model.width == 0.25);
  CHECK_FALSE(c.model.batch_norm);
  CHECK(*c.memory.budget == 64LL << 20);
  CHECK(c.train.batch_size == 0);
  CHECK(c.neuroflux.cache_where == "disk");
  CHECK(c.train.lr_reference_batch == 64);
  CHECK(c.neuroflux.exit_patience == 3);
  CHECK(c.neuroflux.shallow_epoch_fraction == 0.25);
  const Config again = Config::from_json(c.to_json());
  CHECK(again.to_json() == c.to_json());
}

TEST_CASE("module_units reads a number, \"stage\" or \"auto\" and writes them back",
          "[config][unit]") {
  for (const auto& [text, value] : {std::pair{json("stage"), int64_t{0}},
                                    std::pair{json("auto"), int64_t{-1}},
                                    std::pair{json(3), int64_t{3}}}) {
    const Config c = Config::from_json({{"neuroflux", {{"module_units", text}}}});
    CHECK(c.neuroflux.module_units == value);
    CHECK(c.to_json()["neuroflux"]["module_units"] == text);
  }
  CHECK(error_of({{"neuroflux", {{"module_units", "some"}}}}) ==
        "/neuroflux/module_units: expected a positive integer, \"stage\" or \"auto\", got "
        "\"some\"");
}

TEST_CASE("image_folder keys: auto sizes, fractions, flags, written back", "[config][unit]") {
  const Config d = Config::from_json(json::object());
  CHECK(d.data.image_size == 0);  // "auto": synthetic's 32 px and 3 channels, a folder's own
  CHECK(d.data.channels == 0);
  CHECK(d.to_json()["data"]["image_size"] == "auto");
  CHECK(d.to_json()["data"]["channels"] == "auto");
  const Config c = Config::from_json(json::parse(R"({"data": {"name": "image_folder",
      "root": "/data/flowers", "image_size": 64, "channels": "auto", "test_fraction": 0.25,
      "skip_bad_images": true, "cache_dir": "/tmp/decoded"}})"));
  CHECK(c.data.name == "image_folder");
  CHECK(c.data.image_size == 64);
  CHECK(c.data.channels == 0);
  CHECK(c.data.test_fraction == 0.25);
  CHECK(c.data.skip_bad_images);
  CHECK(c.data.cache_dir == "/tmp/decoded");
  CHECK(Config::from_json(c.to_json()).to_json() == c.to_json());
  CHECK(error_of({{"data", {{"skip_bad_images", "yes"}}}}) ==
        "/data/skip_bad_images: expected true or false, got \"yes\"");
  CHECK(error_of({{"data", {{"test_fraction", 1.5}}}}).rfind("/data/test_fraction:", 0) == 0);
  CHECK(error_of({{"data", {{"test_fraction", 0}}}}).rfind("/data/test_fraction:", 0) == 0);
  CHECK(error_of({{"data", {{"channels", "grey"}}}}) ==
        "/data/channels: expected a positive integer or \"auto\", got \"grey\"");
  CHECK(error_of({{"data", {{"image_size", 0}}}}).rfind("/data/image_size:", 0) == 0);
  CHECK(error_of({{"data", {{"cache_dir", 3}}}}).rfind("/data/cache_dir:", 0) == 0);
}

TEST_CASE("bad values are refused with the JSON path", "[config][unit]") {
  CHECK(error_of({{"train", {{"epochs", -3}}}}) ==
        "/train/epochs: expected a positive integer, got -3");
  CHECK(error_of({{"train", {{"epochs", "ten"}}}}).rfind("/train/epochs:", 0) == 0);
  CHECK(error_of({{"train", {{"epoch", 3}}}}).rfind("/train/epoch: unknown key", 0) == 0);
  CHECK(error_of({{"bogus", 1}}).rfind("/bogus: unknown key", 0) == 0);
  CHECK(error_of({{"memory", {{"budget", "64 furlongs"}}}}).rfind("/memory/budget:", 0) == 0);
  CHECK(error_of({{"model", {{"name", "alexnet"}}}}).find("/model/name") == 0);
  CHECK(error_of({{"model", {{"width", 0}}}}).rfind("/model/width:", 0) == 0);
  CHECK(error_of({{"data", {{"val_fraction", 1.5}}}}).rfind("/data/val_fraction:", 0) == 0);
  CHECK(error_of({{"train", "fast"}}).rfind("/train: expected an object", 0) == 0);
  CHECK(error_of({{"neuroflux", {{"module_units", 0}}}}).rfind("/neuroflux/module_units:", 0) == 0);
  CHECK(error_of({{"neuroflux", {{"module_units", "block"}}}})
            .rfind("/neuroflux/module_units:", 0) == 0);
  CHECK(error_of({{"neuroflux", {{"aux", "huge"}}}}).rfind("/neuroflux/aux:", 0) == 0);
  CHECK(error_of({{"neuroflux", {{"local_loss", "sim"}}}}).rfind("/neuroflux/local_loss:", 0) == 0);
  CHECK(error_of({{"neuroflux", {{"sim_weight", -1}}}}).rfind("/neuroflux/sim_weight:", 0) == 0);
  CHECK(error_of({{"neuroflux", {{"recon_weight", 0}}}}).rfind("/neuroflux/recon_weight:", 0) ==
        0);
  CHECK(error_of({{"method", "magic"}}).rfind("/method: expected one of", 0) == 0);
  CHECK(error_of({{"train", {{"batch_size", 0}}}}).rfind("/train/batch_size:", 0) == 0);
  CHECK(error_of({{"neuroflux", {{"cache", {{"where", "cloud"}}}}}})
            .rfind("/neuroflux/cache/where:", 0) == 0);
  CHECK(error_of({{"memory", {{"strategy", "swap"}}}}).rfind("/memory/strategy: expected one of", 0) == 0);
  // checkpoint and offload choose what fits a budget; local learning has nothing to recompute.
  CHECK(error_of({{"memory", {{"strategy", "checkpoint"}}}}).find("memory.budget") != std::string::npos);
  CHECK(error_of({{"method", "local"}, {"memory", {{"budget", "8MiB"}, {"strategy", "offload"}}}})
            .rfind("/memory/strategy:", 0) == 0);
  CHECK(error_of({{"memory", {{"budget", "8MiB"}, {"strategy", "offload"}}}}).empty());
  CHECK(error_of({{"memory", {{"strategy", "checkpoint_sqrt"}}}}).empty());
  CHECK(error_of({{"neuroflux", {{"shallow_epoch_fraction", 0}}}})
            .rfind("/neuroflux/shallow_epoch_fraction:", 0) == 0);
  CHECK(error_of({{"neuroflux", {{"exit_patience", 0}}}}).rfind("/neuroflux/exit_patience:", 0) == 0);
  CHECK(error_of({{"train", {{"lr_reference_batch", -1}}}})
            .rfind("/train/lr_reference_batch:", 0) == 0);
}

TEST_CASE("warmup_epochs, aux_depth and exit_ensemble: values, defaults, refusals",
          "[config][unit]") {
  const Config d = Config::from_json(json::object());
  CHECK(d.train.warmup_epochs == 0);
  CHECK_FALSE(d.neuroflux.exit_ensemble);
  const Config c = Config::from_json(
      {{"train", {{"epochs", 4}, {"warmup_epochs", 0.5}}},
       {"neuroflux", {{"exit_ensemble", true}}}});
  CHECK(c.train.warmup_epochs == 0.5);
  CHECK(c.neuroflux.exit_ensemble);
  CHECK(Config::from_json(c.to_json()).to_json() == c.to_json());
  CHECK(error_of({{"train", {{"warmup_epochs", -1}}}}).rfind("/train/warmup_epochs:", 0) == 0);
  CHECK(error_of({{"train", {{"warmup_epochs", "two"}}}}).rfind("/train/warmup_epochs:", 0) == 0);
  CHECK(error_of({{"train", {{"epochs", 3}, {"warmup_epochs", 3}}}})
            .rfind("/train/warmup_epochs: expected fewer than /train/epochs (3) epochs", 0) == 0);
  CHECK(error_of({{"neuroflux", {{"aux_depth", -2}}}}) ==
        "/neuroflux/aux_depth: expected a non-negative integer, got -2");
  const Config copies = Config::from_json({{"neuroflux", {{"aux", "copies"}, {"aux_depth", 3}}}});
  CHECK(copies.neuroflux.aux_depth == 3);
  CHECK(error_of({{"neuroflux", {{"exit_ensemble", "yes"}}}}) ==
        "/neuroflux/exit_ensemble: expected true or false, got \"yes\"");
}

TEST_CASE("--set overrides reach nested keys and parse JSON values", "[config][unit]") {
  json j = json::object();
  Config::apply_overrides(j, {"train.epochs=5", "model.name=vgg16", "memory.budget=\"1GiB\"",
                              "data.augment=true"});
  const Config c = Config::from_json(j);
  CHECK(c.train.epochs == 5);
  CHECK(c.model.name == "vgg16");
  CHECK(*c.memory.budget == 1LL << 30);
  CHECK(c.data.augment);
  CHECK_THROWS_AS(Config::apply_overrides(j, {"no-equals-sign"}), ConfigError);
}

TEST_CASE("--set values that are not UTF-8 are refused with the JSON path", "[config][unit]") {
  // Found by tests/fuzz/fuzz_config.cpp: a value that is no JSON stays a raw string, and the
  // message (or config.json) dumping it threw nlohmann's type_error: exit 1, not 2.
  const std::string bad = "\xc2" "e";  // a lead byte without its continuation
  json j = json::object();
  Config::apply_overrides(j, {"seed=" + bad});
  CHECK(error_of(j).rfind("/seed: expected a non-negative integer, got \"\xef\xbf\xbd", 0) == 0);
  j = json::object();
  Config::apply_overrides(j, {"data.root=" + bad});
  CHECK(error_of(j).rfind("/data/root: expected UTF-8 text", 0) == 0);
  j = json::object();
  Config::apply_overrides(j, {"model.name=" + bad});
  CHECK(error_of(j).rfind("/model/name: expected UTF-8 text", 0) == 0);
}

TEST_CASE("the device is cpu, cuda or cuda:N", "[config][unit]") {
  // Found by tests/fuzz/fuzz_config.cpp: any string starting with "cuda" was accepted.
  for (const char* ok : {"cpu", "cuda", "cuda:0", "cuda:12"}) {
    INFO(ok);
    CHECK(error_of({{"device", ok}}).empty());
  }
  for (const char* bad : {"cudax", "cuda:", "cuda:r", "cuda:-1", "cuda:1:2", "gpu"}) {
    INFO(bad);
    CHECK(error_of({{"device", bad}}).rfind("/device: expected \"cpu\", \"cuda\" or \"cuda:N\"", 0) == 0);
  }
}

TEST_CASE("numbers past double's range are refused, in --set and in files", "[config][unit]") {
  // Found by tests/fuzz/fuzz_config.cpp: nlohmann throws out_of_range (not parse_error) for 1e400,
  // which escaped both paths: exit 1 instead of 2.
  json j = json::object();
  Config::apply_overrides(j, {"train.lr=1e400"});
  CHECK(error_of(j).rfind("/train/lr: expected a number", 0) == 0);
  try {
    Config::parse_json_text("{\"train\": {\"lr\": 1e400}}", "big.json");
    FAIL("expected a ConfigError");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()).rfind("big.json: not valid JSON", 0) == 0);
  }
}

TEST_CASE("integers written as floats past int64's range are refused", "[config][unit]") {
  // Found by tests/fuzz/fuzz_config.cpp under UBSan: the check cast the double to int64 first,
  // which is undefined past int64's range (on x86 it happened to be refused anyway).
  CHECK(error_of({{"seed", 1e126}}).rfind("/seed: expected a non-negative integer, got", 0) == 0);
  CHECK(error_of({{"train", {{"epochs", -1e19}}}}).rfind("/train/epochs: expected a positive", 0) == 0);
  CHECK(error_of({{"train", {{"epochs", 3.0}}}}).empty());
  CHECK(error_of({{"train", {{"epochs", 2.5}}}}).rfind("/train/epochs:", 0) == 0);
}

TEST_CASE("a config file with a syntax error names the file and line", "[config][unit]") {
  const std::string path = "/tmp/neuroflux-bad-config.json";
  {
    std::ofstream out(path);
    out << "{\n  \"train\": {\n    \"epochs\": 3,,\n  }\n}\n";
  }
  try {
    Config::read_json_file(path);
    FAIL("expected a ConfigError");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()).rfind(path + ":3:", 0) == 0);
  }
  CHECK_THROWS_AS(Config::read_json_file("/nonexistent/config.json"), ConfigError);
}

TEST_CASE("the shipped configs are valid", "[config][unit]") {
  for (const char* name : {"quickstart.json", "vgg11-fmnist.json"}) {
    INFO(name);
    CHECK_NOTHROW(Config::from_json(
        Config::read_json_file(std::string(NEUROFLUX_SOURCE_DIR) + "/configs/" + name)));
  }
}
