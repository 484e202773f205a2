#!/usr/bin/env bash
# Configures (once) and builds NeuroFlux into build/ (Release). Extra arguments go to cmake's
# configure step, e.g. scripts/build.sh -DNEUROFLUX_CUDA=OFF. NEUROFLUX_BUILD_TARGETS limits the
# build to some targets (scripts/setup.sh builds only neuroflux_cli: the library and executable).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
# Ninja, because the Makefile generator lists every source in flags.make, on which the PCH
# depends: adding one file there rebuilds the PCH and then every file. A build/ configured
# earlier keeps its generator.
generator=()
if [ ! -f build/CMakeCache.txt ] && command -v ninja >/dev/null; then generator=(-G Ninja); fi
if [ ! -f build/CMakeCache.txt ] || [ $# -gt 0 ]; then
  cmake -S . -B build "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "$@"
fi
targets=()
for target in ${NEUROFLUX_BUILD_TARGETS:-}; do targets+=(--target "$target"); done
cmake --build build -j"$jobs" "${targets[@]}"
