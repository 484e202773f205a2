// Command-line pieces every subcommand shares: --config, --set, --out, --threads, and the help.
#pragma once

#include <cxxopts.hpp>

#include <string>
#include <vector>

#include "commands.h"
#include "neuroflux/config/config.h"

namespace neuroflux::cli {

/// Adds --config, --set, --out, --threads and --help to `options`.
void add_config_options(cxxopts::Options& options);

/// Parses `args` (the words after the subcommand) with `options`; throws ConfigError on a bad
/// command line. argv[0] is the subcommand's name for messages. An unknown option is named with
/// the closest valid one ("unknown option '--confg'; did you mean '--config'?").
cxxopts::ParseResult parse_args(cxxopts::Options& options, const Args& args);

/// The validated Config named by --config, with --set overrides, --out and --threads applied.
Config load_config(const cxxopts::ParseResult& parsed);

/// One "Examples:" entry of a command's help: what it does, and the command line.
struct Example {
  std::string what;
  std::string command;
};

/// `options`' help for `groups` (all groups when empty) followed by an "Examples:" section, as
/// `neuroflux COMMAND --help` prints it.
std::string help_text(const cxxopts::Options& options, const std::vector<Example>& examples,
                      const std::vector<std::string>& groups = {});

/// The long names of every option of `options` ("config", "set", ...), for suggestions.
std::vector<std::string> long_option_names(const cxxopts::Options& options);

}  // namespace neuroflux::cli
