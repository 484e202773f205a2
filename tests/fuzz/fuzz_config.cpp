// The config reader as the CLI drives it: a config file's text, then --set overrides, then
// validation. Input: the file's text, then any number of override lines, each after "\n--set ":
//
//   {"train": {"epochs": 3}}
//   --set train.lr=0.1
//
// Promise: a ConfigError, or a Config whose to_json() can be written out (config.json) and reads
// back as the same config (what --resume compares), with every size positive and a device the
// README allows.
#include <nlohmann/json.hpp>

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "neuroflux/config/config.h"

namespace {

const std::string kSetMarker = "\n--set ";

bool is_device_name(const std::string& d) {
  if (d == "cpu" || d == "cuda") return true;
  if (d.rfind("cuda:", 0) != 0 || d.size() == 5) return false;
  for (size_t i = 5; i < d.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(d[i]))) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using neuroflux::Config;
  const std::string input(reinterpret_cast<const char*>(data), size);
  size_t cut = input.find(kSetMarker);
  const std::string text = input.substr(0, cut);
  std::vector<std::string> overrides;
  while (cut != std::string::npos) {
    const size_t start = cut + kSetMarker.size();
    cut = input.find(kSetMarker, start);
    overrides.push_back(input.substr(start, cut == std::string::npos ? cut : cut - start));
  }

  std::optional<Config> config;
  neuroflux::fuzz::expect_clear_errors([&] {
    nlohmann::json json = Config::parse_json_text(text, "fuzz.json");
    Config::apply_overrides(json, overrides);
    config = Config::from_json(json);
  });
  if (!config) return 0;

  // A config that was accepted: nothing below may throw at all.
  try {
    const nlohmann::json out = config->to_json();
    const std::string written = out.dump(2);
    const Config again = Config::from_json(nlohmann::json::parse(written));
    NF_FUZZ_REQUIRE(again.to_json() == out, written);
    NF_FUZZ_REQUIRE(!config->memory.budget || *config->memory.budget >= 1, written);
    NF_FUZZ_REQUIRE(config->distributed.bucket_bytes >= 1024, written);
    NF_FUZZ_REQUIRE(is_device_name(config->device), config->device);
  } catch (const std::exception& e) {
    neuroflux::fuzz::escaped(e);
  }
  return 0;
}
