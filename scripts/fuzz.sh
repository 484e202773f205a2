#!/usr/bin/env bash
# libFuzzer harnesses (tests/fuzz/): installs clang and libFuzzer if missing, builds them with
# ASan + UBSan into build-fuzz/ (a separate CMake project: the normal build never needs clang), and
# runs each harness, printing executions per harness.
#
#   scripts/fuzz.sh [--runs N] [SECONDS] [HARNESS...]   fuzz each for SECONDS (default 60), or until
#                                                       N executions, whichever comes first
#   scripts/fuzz.sh --keep-going [SECONDS] [HARNESS...]  the same, but crashes do not stop a harness
#                                                       (libFuzzer's fork mode): for code whose
#                                                       crashes are known and not ours to fix
#   scripts/fuzz.sh --corpus-only [HARNESS...]          each harness over its seed corpus only
#   scripts/fuzz.sh --corpus-only --if-built            the same, or exit 4 (CTest: skipped) when
#                                                       build-fuzz/ was never configured
#   scripts/fuzz.sh --build-only                        install clang, build the harnesses, run none
#                                                       (scripts/test.sh, so CTest's fuzz_corpus runs)
#   scripts/fuzz.sh --write-seeds                       rewrite the seeds (fuzz_write_seeds); the
#                                                       regress-* inputs (former crashes) stay
#
# Harnesses: config idx cifar cache_header checkpoint plan bitmap_args conv2d_rows_args. New inputs
# found while fuzzing go to build-fuzz/corpus/<harness>/ (the committed seeds stay as they are);
# a crash, sanitizer report, hang (-timeout) or oversized allocation is saved under
# build-fuzz/crashes/<harness>/ (that run's only) and makes the script exit 1. Reproduce one with
#   build-fuzz/fuzz_<harness> build-fuzz/crashes/<harness>/crash-...
# FUZZ_JOBS sets the build's parallelism (default: all cores).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-fuzz
all_harnesses=(config idx cifar cache_header checkpoint plan bitmap_args conv2d_rows_args)

mode=fuzz seconds=60 runs=-1 if_built=0 keep_going=0 harnesses=()
while [ $# -gt 0 ]; do
  case "$1" in
    --corpus-only) mode=corpus ;;
    --write-seeds) mode=seeds ;;
    --build-only) mode=build ;;
    --if-built) if_built=1 ;;
    --keep-going) keep_going=1 ;;
    --runs) runs=$2; shift ;;
    [0-9]*) seconds=$1 ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
    *) harnesses+=("$1") ;;
  esac
  shift
done
[ ${#harnesses[@]} -gt 0 ] || harnesses=("${all_harnesses[@]}")

if [ "$if_built" = 1 ] && [ ! -f "$build/CMakeCache.txt" ]; then
  echo "fuzz: skipped: $build was never configured (scripts/fuzz.sh --corpus-only builds it)"
  exit 4
fi

# clang, and libFuzzer + the sanitizer runtimes for Debian 12's default clang (14).
packages=(clang libclang-rt-14-dev)
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt_install.sh"
install_missing "${packages[@]}"

generator=()
if [ ! -f "$build/CMakeCache.txt" ] && command -v ninja >/dev/null; then generator=(-G Ninja); fi
if [ ! -f "$build/CMakeCache.txt" ]; then
  # No build type: the optimisation and debug flags are the harness project's own.
  cmake -S "$root/tests/fuzz" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE= \
    -DCMAKE_CXX_COMPILER=clang++ >/dev/null
fi
targets=()
for h in "${harnesses[@]}"; do targets+=("fuzz_$h"); done
[ "$mode" != seeds ] || targets=(fuzz_write_seeds)
cmake --build "$build" -j"${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}" --target "${targets[@]}"
[ "$mode" != build ] || exit 0

if [ "$mode" = seeds ]; then
  # Inputs that once crashed a harness (regress-*) are kept: the corpus run re-checks them.
  find "$root/tests/fuzz/corpus" -type f ! -name 'regress-*' -delete 2>/dev/null || true
  "$build/fuzz_write_seeds" "$root"
  exit 0
fi

# Harnesses write their files on tmpfs when there is one; a crash exits without cleaning up.
scratch_base=/dev/shm
[ -d "$scratch_base" ] && [ -w "$scratch_base" ] || scratch_base=${TMPDIR:-/tmp}
scratch=$(mktemp -d "$scratch_base/neuroflux-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export NEUROFLUX_FUZZ_SCRATCH=$scratch
export OMP_NUM_THREADS=1
# Every finding is fatal, leaks included (libFuzzer checks them per input), except in checkpoint:
# LibTorch's archive reader leaks its zip state when a corrupt archive makes it throw
# (LeakSanitizer: about 1.5 KB per such input, allocated inside libtorch_cpu), which is not ours
# to fix and would end every run.
asan_options() {
  echo "${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=$([ "$1" = checkpoint ] && echo 0 || echo 1)}"
}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

status=0
summary=()
for h in "${harnesses[@]}"; do
  seeds=$root/tests/fuzz/corpus/$h
  crashes=$build/crashes/$h
  log=$build/logs/$h.log
  mkdir -p "$crashes" "$(dirname "$log")"
  if [ "$mode" = corpus ]; then
    mapfile -t files < <(find "$seeds" -type f 2>/dev/null | sort)
    start=$(date +%s.%N)
    if [ ${#files[@]} -eq 0 ]; then
      echo "no seeds in $seeds" >"$log"
      result="FAILED (no seeds)" status=1
    elif ASAN_OPTIONS=$(asan_options "$h") "$build/fuzz_$h" -timeout=30 \
        -artifact_prefix="$crashes/" "${files[@]}" >"$log" 2>&1; then
      result=ok
    else
      result=FAILED status=1
      tail -n 30 "$log"
    fi
    took=$(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')")
    summary+=("$(printf '%-18s %6d seeds %8ss  %s' "$h" "${#files[@]}" "$took" "$result")")
    continue
  fi
  work=$build/corpus/$h
  rm -rf "$crashes" && mkdir -p "$work" "$crashes"  # artifacts of this run only
  echo "== fuzz_$h: ${seconds}s$([ "$runs" -ge 0 ] && echo " or $runs executions") =="
  fork=()
  [ "$keep_going" = 0 ] || fork=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  start=$(date +%s)
  if ASAN_OPTIONS=$(asan_options "$h") "$build/fuzz_$h" "${fork[@]}" -max_total_time="$seconds" \
      -runs="$runs" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 \
      -artifact_prefix="$crashes/" "$work" "$seeds" >"$log" 2>&1 && [ -z "$(ls "$crashes")" ]; then
    result=ok
  else
    result=CRASHED status=1
    grep -m1 -A25 -E "ERROR: |neuroflux fuzz:|runtime error|deadly signal|timeout" "$log" || tail -n 30 "$log"
  fi
  took=$(($(date +%s) - start))
  if [ "$keep_going" = 0 ]; then
    execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
    rate=$(awk '/stat::average_exec_per_sec/ {print $2}' "$log")
  else  # fork mode prints no final stats; its last status line counts every job's executions
    execs=$(grep -oE "^#[0-9]+:" "$log" | tail -n 1 | tr -d '#:')
    rate=$([ -n "$execs" ] && echo $((execs / (took > 0 ? took : 1))))
  fi
  summary+=("$(printf '%-18s %12s execs %8s exec/s %6ss  %3d artifacts  %s' "$h" "${execs:-?}" \
    "${rate:-?}" "${took:-?}" "$(ls "$crashes" | wc -l)" "$result")")
done

echo
echo "== summary (logs: $build/logs/) =="
printf '%s\n' "${summary[@]}"
exit $status
