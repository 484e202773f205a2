// Starting a distributed job: which rank this process is, and `--nproc N`, which starts N local
// ranks of this very binary the way torchrun would.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "neuroflux/distributed/communicator.h"

namespace neuroflux {

/// --rank / --world-size / --master HOST:PORT when given, else torchrun's RANK, WORLD_SIZE,
/// LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT; world size 1 when neither says more.
/// Bad values are ConfigErrors naming the option or variable.
DistributedOptions resolve_distributed(std::optional<int> rank, std::optional<int> world_size,
                                       std::optional<std::string> master);

/// A TCP port on 127.0.0.1 that was free a moment ago (the kernel's choice for port 0).
int free_port();

/// Runs `args` (a command line of this binary, without the program name) as ranks 0..nproc-1 on
/// 127.0.0.1 with torchrun's variables set and waits. When a rank fails, the others get
/// `grace_seconds` to notice and exit on their own (they report the lost peer), then are killed.
/// Returns 0 when all succeed, else the first failing rank's exit code (1 for a signal).
int launch_local_ranks(int nproc, const std::vector<std::string>& args, double grace_seconds);

}  // namespace neuroflux
