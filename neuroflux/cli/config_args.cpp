#include "config_args.h"

#include <nlohmann/json.hpp>

#include "neuroflux/util/errors.h"

namespace neuroflux::cli {

void add_config_options(cxxopts::Options& options) {
  options.add_options()
      ("c,config", "JSON config file", cxxopts::value<std::string>())
      ("set", "override a config value: key.path=value (repeatable)",
       cxxopts::value<std::vector<std::string>>())
      ("o,out", "output directory (overrides output.dir)", cxxopts::value<std::string>())
      ("threads", "intra-op threads (overrides threads; default: all cores)",
       cxxopts::value<int64_t>())
      ("h,help", "show this help");
}

cxxopts::ParseResult parse_args(cxxopts::Options& options, const Args& args) {
  std::vector<std::string> words;
  words.push_back(options.program());
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  int argc = static_cast<int>(argv.size());
  try {
    char** data = argv.data();
    return options.parse(argc, data);
  } catch (const cxxopts::exceptions::exception& e) {
    throw ConfigError(options.program() + ": " + e.what() + " (see --help)");
  }
}

Config load_config(const cxxopts::ParseResult& parsed) {
  if (parsed.count("config") == 0) throw ConfigError("--config FILE is required");
  nlohmann::json json = Config::read_json_file(parsed["config"].as<std::string>());
  if (parsed.count("set") != 0)
    Config::apply_overrides(json, parsed["set"].as<std::vector<std::string>>());
  if (parsed.count("out") != 0)
    Config::apply_overrides(json, {"output.dir=\"" + parsed["out"].as<std::string>() + "\""});
  if (parsed.count("threads") != 0)
    Config::apply_overrides(json, {"threads=" + std::to_string(parsed["threads"].as<int64_t>())});
  return Config::from_json(json);
}

}  // namespace neuroflux::cli
