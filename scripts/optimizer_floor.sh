#!/usr/bin/env bash
# What memory.optimizer_state=host and train.fused_update cost and save (README "The optimizer's
# floor"), on vgg11 width 0.25 / Fashion-MNIST ([128, 1, 28, 28] batches), each variant against
# the defaults in the same invocation:
#
#  1. step time and peak at batch 128, unbounded: backprop (end to end) and local (one unit step
#     per unit, the step NeuroFlux's blocks take), on the first TIME_LIMIT (12800) training
#     images, ROUNDS (3) interleaved rounds, the fastest kept;
#  2. the smallest budget backprop fits at batch 128 (its unbounded peak), checked by training
#     at that budget (must fit) and 2% below it (must be refused, exit 4);
#  3. the smallest budget NeuroFlux fits: `neuroflux plan` under a 1 MiB budget exits 4 naming
#     the smallest it would plan for; a run is trained at it, and when that run's own profile
#     (adaptive heads are sized from measured times, so profiles vary a little) names a larger
#     one, at that (at most 3 more tries, else 5% more each).
#
#   scripts/optimizer_floor.sh [OUT]        (default runs/optimizer_floor; ~5 min on 2 cores)
#
# Runs are `neuroflux train` for 1 epoch; phases 2 and 3 on the first TRAIN_LIMIT (2560)
# training images. Each run's files are in OUT/<run>/ and its log in OUT/<run>.log; the table
# goes to OUT/summary.md. NEUROFLUX_BIN names the executable (default build/neuroflux/neuroflux).
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${NEUROFLUX_BIN:-build/neuroflux/neuroflux}
out=${1:-runs/optimizer_floor}
limit=${TRAIN_LIMIT:-2560}
time_limit=${TIME_LIMIT:-12800}
rounds=${ROUNDS:-3}
mkdir -p "$out"
export NEUROFLUX_QUIET=1

common=(--config configs/vgg11-fmnist.json --set train.epochs=1 --set data.test_limit=512
        --set train.batch_size=128 --set train.max_batch_size=128)
variants=(default host fused host+fused)
declare -A sets=(
  [default]=""
  [host]="--set memory.optimizer_state=host"
  [fused]="--set train.fused_update=true"
  [host+fused]="--set memory.optimizer_state=host --set train.fused_update=true")

field() {  # field REPORT EXPRESSION (python, over the report as r)
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$1"
}

# train NAME METHOD VARIANT [more args]: runs, prints the exit code.
train() {
  local name=$1 method=$2 variant=$3
  shift 3
  # shellcheck disable=SC2086
  "$bin" train "${common[@]}" --set "data.train_limit=$limit" --set "method=$method" \
    ${sets[$variant]} "$@" \
    --out "$out/$name" >"$out/$name.log" 2>&1
  echo $?
}

declare -A seconds peak steps
echo "== 1. step time and peak at batch 128 (unbounded), $rounds rounds"
for round in $(seq 1 "$rounds"); do
  for method in backprop local; do
    for v in "${variants[@]}"; do
      name="$method-$v-r$round"
      rc=$(train "$name" "$method" "$v" --set "data.train_limit=$time_limit")
      if [ "$rc" != 0 ]; then echo "$name failed (exit $rc): $out/$name.log"; exit 1; fi
      s=$(field "$out/$name/report.json" "r['train_seconds']")
      p=$(field "$out/$name/report.json" "r['peak_memory_bytes']")
      key="$method-$v"
      steps[$key]=$(field "$out/$name/report.json" "-(-r['train_samples'] // 128)")
      if [ -z "${seconds[$key]:-}" ] || python3 -c "import sys; sys.exit(0 if $s < ${seconds[$key]} else 1)"; then
        seconds[$key]=$s
      fi
      peak[$key]=$p
      echo "  $name: train ${s}s, peak $p bytes"
    done
  done
done

echo "== 2. backprop's smallest budget at batch 128"
declare -A bp_fits bp_below
for v in "${variants[@]}"; do
  p=${peak[backprop-$v]}
  bp_fits[$v]=$(train "backprop-$v-at-peak" backprop "$v" --set "memory.budget=$p")
  below=$(( p * 98 / 100 ))
  bp_below[$v]=$(train "backprop-$v-below" backprop "$v" --set "memory.budget=$below")
  echo "  $v: budget $p -> exit ${bp_fits[$v]}; $below -> exit ${bp_below[$v]}"
done

echo "== 3. NeuroFlux's smallest budget"
declare -A nf_min nf_fit nf_tries nf_peak nf_secs
named_budget() { grep -o 'would work is [^)]*bytes)' "$1" | tail -1 | grep -o '[0-9]* bytes' | grep -o '[0-9]*'; }
for v in "${variants[@]}"; do
  # shellcheck disable=SC2086
  "$bin" plan "${common[@]}" --set "data.train_limit=$limit" --set method=neuroflux ${sets[$v]} \
    --set memory.budget=1MiB >"$out/plan-$v.log" 2>&1
  nf_min[$v]=$(named_budget "$out/plan-$v.log")
  budget=${nf_min[$v]}
  for try in 1 2 3 4; do
    name="neuroflux-$v-try$try"
    rc=$(train "$name" neuroflux "$v" --set "memory.budget=$budget")
    nf_tries[$v]=$try
    if [ "$rc" = 0 ]; then
      nf_fit[$v]=$budget
      nf_peak[$v]=$(field "$out/$name/report.json" "r['peak_memory_bytes']")
      nf_secs[$v]=$(field "$out/$name/report.json" "r['train_seconds']")
      break
    fi
    [ "$rc" = 4 ] || { echo "$name failed (exit $rc): $out/$name.log"; break; }
    named=$(named_budget "$out/$name.log")
    if [ -n "$named" ] && [ "$named" -gt "$budget" ]; then budget=$named; else budget=$(( budget * 105 / 100 )); fi
  done
  echo "  $v: planner's smallest ${nf_min[$v]} bytes; fits at ${nf_fit[$v]:-?} (try ${nf_tries[$v]}), peak ${nf_peak[$v]:-?}, train ${nf_secs[$v]:-?} s"
done

{
  echo "# Optimizer floor: vgg11 w0.25, Fashion-MNIST, 1 epoch"
  echo
  echo "Training seconds of one epoch ($time_limit images less 10% validation, batch 128) and peak,"
  echo "no budget (fastest of $rounds interleaved rounds; ratios to the default):"
  echo
  echo "| method | variant | train s | ms / step | ratio | peak bytes | ratio |"
  echo "|---|---|---|---|---|---|---|"
  for method in backprop local; do
    for v in "${variants[@]}"; do
      k="$method-$v"
      d="$method-default"
      python3 -c "print('| $method | $v | %.2f | %.1f | %.3f | %d | %.3f |' % (${seconds[$k]}, 1000 * ${seconds[$k]} / ${steps[$k]}, ${seconds[$k]}/${seconds[$d]}, ${peak[$k]}, ${peak[$k]}/${peak[$d]}))"
    done
  done
  echo
  echo "Smallest budget: backprop at batch 128 (its unbounded peak; exit codes of a run at it and"
  echo "2% below), NeuroFlux (the planner's smallest from \`neuroflux plan\`, the budget a run"
  echo "fitted at, that run's peak and train seconds); ratios to the default:"
  echo
  echo "| variant | backprop bytes | ratio | at / below | NF planner bytes | NF fits at | ratio | NF peak | NF train s |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for v in "${variants[@]}"; do
    python3 -c "
bp, bp0 = ${peak[backprop-$v]}, ${peak[backprop-default]}
fit, fit0 = '${nf_fit[$v]:-}', '${nf_fit[default]:-}'
ratio = '%.3f' % (int(fit) / int(fit0)) if fit and fit0 else ''
print('| $v | %d | %.3f | ${bp_fits[$v]} / ${bp_below[$v]} | ${nf_min[$v]:-} | %s | %s | ${nf_peak[$v]:-} | ${nf_secs[$v]:-} |' % (bp, bp / bp0, fit or 'no fit', ratio))"
  done
} | tee "$out/summary.md"
