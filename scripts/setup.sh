#!/usr/bin/env bash
# Installs every dependency (idempotent), builds the library and the `neuroflux` executable
# (Release, into build/; the tests are built by scripts/test.sh), then runs the quickstart:
# NeuroFlux and backprop side by side under one memory budget on Fashion-MNIST
# (scripts/quickstart.sh, about 3.5 minutes on 2 cores). Usage: scripts/setup.sh [--no-train]
set -euo pipefail
cd "$(dirname "$0")/.."

train=1
[ "${1:-}" = "--no-train" ] && train=0

scripts/install-deps.sh
NEUROFLUX_BUILD_TARGETS=neuroflux_cli scripts/build.sh

if [ "$train" = 1 ]; then
  scripts/quickstart.sh
fi
