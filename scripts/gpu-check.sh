#!/usr/bin/env bash
# The GPU path, checked for real: on a machine with an NVIDIA GPU and a CUDA-enabled LibTorch,
# configure with NEUROFLUX_CUDA=ON into build-gpu/, build, run every test tagged [cuda] (each op's
# CPU-vs-CUDA comparison on random inputs of awkward sizes: bitmap pack / unpack / relu and the
# packed layers, conv2d_rows forward, out= and gradients; tests/ops/test_*_cuda.cpp) and the op
# micro-benchmark on the GPU. In the normal CPU build the same tests form the CTest entry "cuda",
# which reports "Skipped" where there is no GPU.
# Everything it prints also goes to build-gpu/gpu-check.log.
#
# LibTorch: CMAKE_PREFIX_PATH if set (an official CUDA LibTorch distribution, unpacked), else the
# one inside a CUDA build of PyTorch (python3 -c 'import torch; print(torch.utils.cmake_prefix_path)').
#
# Without a GPU it says so and exits 0 without pretending to have tested anything. With a GPU but
# no CUDA LibTorch, or when a test fails, it exits non-zero.
#
#   scripts/gpu-check.sh [extra cmake configure arguments]
#   BUILD_DIR=/tmp/gpu scripts/gpu-check.sh      # another build folder
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-gpu}

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-check: no NVIDIA GPU here (nvidia-smi missing or failing): nothing was built or tested."
  echo "gpu-check: the CUDA kernels' compile check runs in every normal build instead"
  echo "           (target neuroflux_cuda_kernels_check, when nvcc is installed)."
  exit 0
fi

mkdir -p "$build"
log=$build/gpu-check.log
: >"$log"
exec > >(tee -a "$log") 2>&1
echo "gpu-check: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
nvidia-smi -L

prefix=${CMAKE_PREFIX_PATH:-}
if [ -z "$prefix" ]; then
  if prefix=$(python3 -c 'import torch, sys
if not torch.version.cuda: sys.exit("this PyTorch has no CUDA")
print(torch.utils.cmake_prefix_path)' 2>/dev/null); then
    echo "gpu-check: LibTorch from the PyTorch install: $prefix"
  else
    echo "gpu-check: error: a GPU is here but no CUDA-enabled LibTorch was found." >&2
    echo "  Set CMAKE_PREFIX_PATH to an unpacked CUDA LibTorch distribution, or install a CUDA" >&2
    echo "  build of PyTorch for python3." >&2
    exit 1
  fi
else
  echo "gpu-check: LibTorch from CMAKE_PREFIX_PATH: $prefix"
fi

jobs=$(nproc 2>/dev/null || echo 2)
# NEUROFLUX_CUDA=ON fails the configure step if this LibTorch has no CUDA.
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DNEUROFLUX_CUDA=ON \
  -DCMAKE_PREFIX_PATH="$prefix" "$@"
cmake --build "$build" -j"$jobs" --target neuroflux_tests neuroflux_cli

echo
echo "== tests tagged [cuda] =="
tests=$build/tests/neuroflux_tests
"$tests" "[cuda]" --durations yes >"$build/gpu-tests.txt" 2>&1 || status=$?
cat "$build/gpu-tests.txt"
# Exit 4: every test skipped itself (tests/test_skip.h); any skip at all means no GPU was used.
if [ "${status:-0}" -eq 4 ] || grep -q "no CUDA device: skipped" "$build/gpu-tests.txt"; then
  echo "gpu-check: error: the [cuda] tests skipped themselves although nvidia-smi sees a GPU" >&2
  echo "  (is this LibTorch's CUDA version supported by the driver?)" >&2
  exit 1
fi
if [ "${status:-0}" -ne 0 ]; then
  echo "gpu-check: error: [cuda] tests failed (exit ${status})" >&2
  exit "$status"
fi

echo
echo "== op micro-benchmark on the GPU =="
"$build/neuroflux/neuroflux" bench-ops --device cuda --json "$build/bench-ops-cuda.json"

echo
echo "gpu-check: passed. Log: $log; benchmark figures: $build/bench-ops-cuda.json"
