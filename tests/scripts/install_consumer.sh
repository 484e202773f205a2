#!/usr/bin/env bash
# `cmake --install` the build, then configure, build and run a tiny consumer project against the
# installed tree with find_package(NeuroFlux).
# Usage: install_consumer.sh NEUROFLUX_BIN SOURCE_DIR BUILD_DIR
set -eu
src=$2; build=$3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
test -f "$tmp/prefix/lib/cmake/NeuroFlux/NeuroFluxConfig.cmake"
test -f "$tmp/prefix/include/neuroflux/memory/memory_meter.h"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$src/tests/consumer" -B "$tmp/consumer" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$tmp/prefix" "${launcher[@]}" >/dev/null
cmake --build "$tmp/consumer" -j2 >/dev/null
LD_LIBRARY_PATH="$tmp/prefix/lib:${LD_LIBRARY_PATH:-}" "$tmp/consumer/consumer"
echo "ok: consumer built and ran against the installed package"
