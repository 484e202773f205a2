#!/usr/bin/env bash
# Configures (once) and builds NeuroFlux into build/ (Release). Extra arguments go to cmake's
# configure step, e.g. scripts/build.sh -DNEUROFLUX_CUDA=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
if [ ! -f build/CMakeCache.txt ] || [ $# -gt 0 ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@"
fi
cmake --build build -j"$jobs"
