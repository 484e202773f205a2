#!/usr/bin/env bash
# `neuroflux train` ends with its summary table on stdout, NEUROFLUX_QUIET or not (quiet silences
# progress and log lines, on stderr), for whole-network and block-wise methods.
# Usage: train_summary.sh NEUROFLUX_BIN SOURCE_DIR BUILD_DIR
set -u
bin=$1; src=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
small=(--config "$src/configs/quickstart.json" --set data.name=synthetic --set data.train_size=64
       --set data.test_size=32 --set data.image_size=16 --set train.epochs=1 --threads 1)
check() {  # check NAME PATTERN...: every pattern is a line of $tmp/NAME.out
  local name=$1; shift
  for pattern in "$@"; do
    grep -qE -- "$pattern" "$tmp/$name.out" ||
      { echo "FAIL: $name: no line '$pattern' in the summary:"; cat "$tmp/$name.out"; fail=1; }
  done
}
NEUROFLUX_QUIET=1 "$bin" train "${small[@]}" --out "$tmp/bp" >"$tmp/bp.out" 2>"$tmp/bp.err" ||
  { echo "FAIL: backprop run exited $?"; cat "$tmp/bp.err"; fail=1; }
[ ! -s "$tmp/bp.err" ] || { echo "FAIL: NEUROFLUX_QUIET=1 still wrote to stderr:"; cat "$tmp/bp.err"; fail=1; }
check bp '^run summary$' '^  method      backprop \(simplecnn on synthetic, cpu\)$' \
  '^  test acc    [01]\.[0-9]{4} \(validation [01]\.[0-9]{4}\)$' '^  budget      none$' \
  '^  batch       128 \(the whole network, units 0-[0-9]+\)$' \
  "^  report      $tmp/bp/report.json " "^  model       $tmp/bp/model.pt$"
"$bin" train "${small[@]}" --set method=neuroflux --set memory.budget=16MiB --out "$tmp/nf" \
  >"$tmp/nf.out" 2>"$tmp/nf.err" || { echo "FAIL: neuroflux run exited $?"; cat "$tmp/nf.err"; fail=1; }
check nf '^  method      neuroflux ' '^  peak        .* MiB \([0-9,]+ bytes\), 0\.[0-9]{2} of the budget$' \
  '^  budget      16\.0 MiB \(16,777,216 bytes\)$' '^  blocks      [0-9]+ blocks? \(units:batch\) ' \
  '^  exit        unit [0-9]+: [0-9,]+ params' "^  run dir     $tmp/nf/$" \
  "^  model       $tmp/nf/model.pt \(full model: full_model.pt\)$"
[ "$fail" = 0 ] && { echo "ok: summaries:"; cat "$tmp/bp.out" "$tmp/nf.out"; }
exit $fail
