// The `neuroflux` subcommands. Each takes the arguments after its name and returns the process
// exit code; errors derived from neuroflux::Error are turned into messages and codes by main().
#pragma once

#include <string>
#include <vector>

namespace neuroflux::cli {

using Args = std::vector<std::string>;

int train_command(const Args& args);
int profile_command(const Args& args);
int plan_command(const Args& args);
int eval_command(const Args& args);
int bench_command(const Args& args);
/// Micro-benchmark of the custom operators (bitmap pack/unpack against a plain copy).
int bench_ops_command(const Args& args);
/// Peak memory and step time of row-centric conv stacks against plain backprop.
int bench_rowconv_command(const Args& args);

}  // namespace neuroflux::cli
