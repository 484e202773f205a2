#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole CTest suite. Extra arguments go to ctest
# (e.g. scripts/test.sh -L unit).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
# The libFuzzer harnesses (clang, ASan + UBSan, build-fuzz/), so that CTest's fuzz_corpus entry
# runs every harness over its seed corpus instead of reporting Skipped.
scripts/fuzz.sh --build-only
jobs=$(nproc 2>/dev/null || echo 2)
cd build
# Each test process runs one intra-op thread so parallel tests do not fight over the cores.
NEUROFLUX_QUIET=1 ctest --output-on-failure -j"$jobs" "$@"
