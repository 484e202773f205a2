#!/usr/bin/env bash
# The newcomer's path, small: scripts/quickstart.sh (what scripts/setup.sh runs) on a few hundred
# images, checking that it exits 0 and ends with the summary table's columns and both methods.
# Usage: quickstart.sh NEUROFLUX_BIN SOURCE_DIR BUILD_DIR
set -euo pipefail
bin=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

NEUROFLUX_BIN=$bin "$src/scripts/quickstart.sh" --out "$tmp/run" --threads 1 \
  --set data.train_limit=384 --set data.test_limit=256 --set train.epochs=1 \
  > "$tmp/stdout" 2> "$tmp/stderr" || { cat "$tmp/stderr" "$tmp/stdout"; exit 1; }

fail() { echo "quickstart: $1"; cat "$tmp/stdout"; exit 1; }
grep -qE '^method +test acc +time to target +peak / budget +exported params +batch sizes$' \
  "$tmp/stdout" || fail "no summary header"
for method in backprop neuroflux; do
  row=$(grep -E "^$method +[0-9]\.[0-9]{4} " "$tmp/stdout") || fail "no measured row for $method"
  # The peak column reads "X / 14.4 MiB (N%)".
  echo "$row" | grep -qE ' / 14\.4 MiB \([0-9]+%\)' || fail "no peak / budget in: $row"
done
grep -q "budget 14.4 MiB (15099494 bytes)" "$tmp/stdout" || fail "no budget line"
[ -f "$tmp/run/bench.json" ] && [ -f "$tmp/run/neuroflux/model.pt" ] || fail "files missing"
echo "quickstart: ok"
