#!/usr/bin/env bash
# Builds NeuroFlux with a sanitizer into a tree of its own and runs tests under it:
#
#   scripts/sanitize.sh address   ASan + UBSan (build-asan/): every unit-labelled CTest entry
#   scripts/sanitize.sh thread    TSan (build-tsan/): the parts that run threads of their own:
#                                 the cache loader's prefetch thread ([cache]), the offload store's
#                                 copy thread ([recompute]), the CPU allocator's block cache
#                                 ([memory]) and the distributed ranks ([distributed])
#
# Extra arguments go to ctest (address) or to the test executable (thread), e.g.
# `scripts/sanitize.sh thread "[cache]"`. Exit status: the tests' (non-zero on any report).
#
# Debian's LibTorch is not instrumented. ASan still sees every heap access NeuroFlux's own code
# makes (and the allocator it installs); TSan sees NeuroFlux's threads and every lock taken
# through pthreads, but not the atomics inside LibTorch, so its reports from frames inside
# libtorch/libgomp are suppressed (tests/sanitize/tsan.supp) and the tests run one intra-op
# thread. The progress line runs no thread of its own, so it has no TSan test.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-}
shift || true
case "$kind" in
  address)
    dir=build-asan
    flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
    ;;
  thread)
    dir=build-tsan
    flags="-fsanitize=thread"
    ;;
  *)
    echo "usage: scripts/sanitize.sh address|thread [ctest or test arguments]" >&2
    exit 2
    ;;
esac

scripts/install-deps.sh
started=$(date +%s)
generator=()
if [ ! -f "$dir/CMakeCache.txt" ] && command -v ninja >/dev/null; then generator=(-G Ninja); fi
# -O1 -g: readable stacks at a speed the tests can bear. No CUDA, examples or install rules: the
# sanitizers look at the host code the tests run.
cmake -S . -B "$dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="$flags" -DCMAKE_SHARED_LINKER_FLAGS="$flags" \
  -DNEUROFLUX_CUDA=OFF -DNEUROFLUX_BUILD_EXAMPLES=OFF -DNEUROFLUX_INSTALL=OFF >/dev/null
cmake --build "$dir" -j"$(nproc 2>/dev/null || echo 2)" --target neuroflux_tests neuroflux_cli
built=$(date +%s)
echo "sanitize.sh $kind: built in $((built - started)) s"

export NEUROFLUX_QUIET=1 OMP_NUM_THREADS=1
status=0
if [ "$kind" = address ]; then
  # LibTorch registers operators and never frees them at exit: leak reports from it are noise.
  export ASAN_OPTIONS="halt_on_error=1:detect_leaks=0:strict_string_checks=1:check_initialization_order=1"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
  (cd "$dir" && ctest --output-on-failure -L unit -E 'fuzz_corpus|memory_threads_tsan|cuda' \
                  -j"$(nproc 2>/dev/null || echo 2)" "$@") || status=$?
else
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/sanitize/tsan.supp"
  filter=${1:-"[cache],[recompute],[memory],[distributed]"}
  "$dir/tests/neuroflux_tests" "$filter" --order rand --rng-seed 7 || status=$?
fi
echo "sanitize.sh $kind: tests took $(($(date +%s) - built)) s, exit $status"
exit "$status"
