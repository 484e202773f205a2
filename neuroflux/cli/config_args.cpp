#include "config_args.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

#include "neuroflux/util/closest_name.h"
#include "neuroflux/util/errors.h"

namespace neuroflux::cli {
namespace {

/// The first word of `args` that looks like an option `options` does not have ("--confg",
/// "--confg=x", "-q"), or "" when there is none (before a "--" that ends the options).
std::string first_unknown_option(const cxxopts::Options& options, const Args& args) {
  const std::vector<std::string> names = long_option_names(options);
  std::string shorts;
  for (const auto& group : options.groups())
    for (const auto& o : options.group_help(group).options) shorts += o.s;
  for (const auto& word : args) {
    if (word == "--") break;
    if (word.rfind("--", 0) == 0) {
      const std::string name = word.substr(
          2, word.find('=') == std::string::npos ? std::string::npos : word.find('=') - 2);
      if (std::find(names.begin(), names.end(), name) == names.end()) return name;
    } else if (word.size() >= 2 && word[0] == '-' &&
               std::isdigit(static_cast<unsigned char>(word[1])) == 0) {
      if (shorts.find(word[1]) == std::string::npos) return word.substr(1, 1);
    }
  }
  return "";
}

}  // namespace

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

std::vector<std::string> long_option_names(const cxxopts::Options& options) {
  std::vector<std::string> names;
  for (const auto& group : options.groups())
    for (const auto& o : options.group_help(group).options)
      names.insert(names.end(), o.l.begin(), o.l.end());
  return names;
}

cxxopts::ParseResult parse_args(cxxopts::Options& options, const Args& args) {
  std::vector<std::string> words;
  words.push_back(options.program());
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  int argc = static_cast<int>(argv.size());
  const std::string see = " (see " + options.program() + " --help)";
  try {
    char** data = argv.data();
    return options.parse(argc, data);
  } catch (const cxxopts::exceptions::no_such_option& e) {
    const std::string unknown = first_unknown_option(options, args);
    if (unknown.size() > 1)
      throw ConfigError(options.program() + ": unknown option '--" + unknown + "'" +
                        did_you_mean(unknown, long_option_names(options), "--") + see);
    if (unknown.size() == 1)
      throw ConfigError(options.program() + ": unknown option '-" + unknown + "'" + see);
    throw ConfigError(options.program() + ": " + e.what() + see);
  } catch (const cxxopts::exceptions::exception& e) {
    throw ConfigError(options.program() + ": " + e.what() + see);
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

std::string help_text(const cxxopts::Options& options, const std::vector<Example>& examples,
                      const std::vector<std::string>& groups) {
  std::string text = options.help(groups);
  if (examples.empty()) return text;
  text += "\nExamples:\n";
  for (const auto& e : examples) text += "  # " + e.what + "\n  " + e.command + "\n";
  return text;
}

}  // namespace neuroflux::cli
