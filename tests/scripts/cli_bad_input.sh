#!/usr/bin/env bash
# The CLI refuses bad input with a message naming the problem and the documented exit code.
# Usage: cli_bad_input.sh NEUROFLUX_BIN SOURCE_DIR BUILD_DIR
set -u
bin=$1; src=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
expect() {  # expect CODE PATTERN -- command...
  local code=$1 pattern=$2; shift 3
  "$@" >"$tmp/out" 2>&1; local got=$?
  if [ "$got" != "$code" ] || ! grep -q -- "$pattern" "$tmp/out"; then
    echo "FAIL: $* -> exit $got (want $code), output:"; cat "$tmp/out"; fail=1
  else
    echo "ok: exit $got: $(grep -m1 -- "$pattern" "$tmp/out")"
  fi
}
cfg=$src/configs/quickstart.json
export NEUROFLUX_QUIET=1
expect 2 "/train/epochs: expected a positive integer, got -3" -- \
  "$bin" train --config "$cfg" --set train.epochs=-3 --out "$tmp/a"
expect 2 "/train/epochz: unknown key" -- "$bin" train --config "$cfg" --set train.epochz=3 --out "$tmp/a"
expect 2 "/model/name" -- "$bin" train --config "$cfg" --set model.name=alexnet --out "$tmp/a"
expect 2 "/train/warmup_epochs: expected a number" -- \
  "$bin" train --config "$cfg" --set train.warmup_epochs=-1 --out "$tmp/a"
expect 2 "/neuroflux/exit_ensemble: expected true or false" -- \
  "$bin" train --config "$cfg" --set neuroflux.exit_ensemble=maybe --out "$tmp/a"
expect 2 "/neuroflux/aux: expected one of" -- \
  "$bin" train --config "$cfg" --set neuroflux.aux=clones --out "$tmp/a"
expect 2 "cannot open the config file" -- "$bin" train --config "$tmp/missing.json"
printf '{"train": {"epochs": 3,}}' > "$tmp/bad.json"
expect 2 "bad.json:1:" -- "$bin" train --config "$tmp/bad.json"
expect 2 "unknown command" -- "$bin" frobnicate
expect 4 "64.0 KiB" -- "$bin" train --config "$cfg" --set memory.budget=64KiB \
  --set train.batch_size=auto --set data.name=synthetic --set data.train_size=64 --out "$tmp/b"
mkdir -p "$tmp/data"; printf '\x00\x00\x08\x03\x00\x00\x00\x10' > "$tmp/data/train-images-idx3-ubyte"
printf '\x00\x00\x08\x01\x00\x00\x00\x10' > "$tmp/data/train-labels-idx1-ubyte"
expect 3 "train-images-idx3-ubyte" -- "$bin" train --config "$cfg" --set data.root="$tmp/data" --out "$tmp/c"
[ ! -e "$tmp/c/report.json" ] || { echo "FAIL: a failed run wrote a report"; fail=1; }
expect 3 "/proc/nf-out: cannot create the output directory" -- \
  "$bin" train --config "$cfg" --out /proc/nf-out
expect 3 "/proc/nf-bench: cannot create the output directory" -- \
  "$bin" bench --config "$cfg" --out /proc/nf-bench
expect 2 "/data/val_fraction: .* holds none out for validation" -- "$bin" train --config "$cfg" \
  --set data.name=synthetic --set data.train_size=8 --set data.val_fraction=0 --out "$tmp/d"
expect 2 "/data/train_limit: leaves 1 training sample" -- "$bin" train --config "$cfg" \
  --set data.train_limit=2 --set data.val_fraction=0.5 --out "$tmp/e"
# bench: a method that does not fit is a row of the table and the bench still exits 0; a method
# that could not be measured (here: its data is corrupt) makes it exit 1.
tiny=(--set data.name=synthetic --set data.train_size=64 --set data.test_size=32 --set train.epochs=1)
expect 0 "backprop  *does not fit: .*64.0 KiB" -- "$bin" bench --config "$cfg" --methods backprop,local \
  --set memory.budget=64KiB "${tiny[@]}" --out "$tmp/f"
grep -q "local  *does not fit" "$tmp/out" || { echo "FAIL: no local row"; cat "$tmp/out"; fail=1; }
expect 1 "backprop  *failed (exit 3): .*train-images-idx3-ubyte" -- "$bin" bench --config "$cfg" \
  --methods backprop --set data.root="$tmp/data" --out "$tmp/g"
exit $fail
