// Command-line pieces every subcommand shares: --config, --set, --out, --threads.
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
/// command line. argv[0] is the subcommand's name for messages.
cxxopts::ParseResult parse_args(cxxopts::Options& options, const Args& args);

/// The validated Config named by --config, with --set overrides, --out and --threads applied.
Config load_config(const cxxopts::ParseResult& parsed);

}  // namespace neuroflux::cli
