#!/usr/bin/env bash
# `neuroflux profile --allocations N` prints, per unit step, the operators live at its peak, and
# --json carries them; a bad N is refused naming the option.
# Usage: profile_allocations.sh NEUROFLUX_BIN SOURCE_DIR BUILD_DIR
set -u
bin=$1; src=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
small=(--config "$src/configs/quickstart.json" --set data.name=synthetic --set data.train_size=64
       --set data.test_size=32 --set data.image_size=16 --set train.batch_size=32 --set train.max_batch_size=32
       --threads 1)
NEUROFLUX_QUIET=1 "$bin" profile "${small[@]}" --allocations=3 >"$tmp/table.out" 2>"$tmp/err" ||
  { echo "FAIL: profile --allocations exited $?"; cat "$tmp/err"; fail=1; }
grep -qE '^unit 0, batch 8: the step.s peak holds .* it allocated, above .* live before it$' \
  "$tmp/table.out" || { echo "FAIL: no per-step heading:"; cat "$tmp/table.out"; fail=1; }
grep -qE '^\| aten::[a-z_0-9]+.* \| [0-9]+ \| [0-9]+ \|$' "$tmp/table.out" ||
  { echo "FAIL: no operator row:"; cat "$tmp/table.out"; fail=1; }
NEUROFLUX_QUIET=1 "$bin" profile "${small[@]}" --allocations --json >"$tmp/profile.json" \
  2>"$tmp/err" || { echo "FAIL: profile --allocations --json exited $?"; cat "$tmp/err"; fail=1; }
/usr/bin/python3 - "$tmp/profile.json" <<'PY' || fail=1
import json, sys
profile = json.load(open(sys.argv[1]))
for unit in profile["units"]:
    traces = unit.get("allocations")
    assert traces, f"unit {unit['unit']}: no allocations"
    measured = {p["batch"]: p["bytes"] for p in unit["transient_peaks"]}
    for t in traces:
        total = sum(o["bytes"] for o in t["operators"])
        assert total == t["traced_bytes"], (unit["unit"], total, t["traced_bytes"])
        assert t["batch"] in measured, (unit["unit"], t["batch"])
print("ok: every unit's traced peak adds up;", len(profile["units"]), "units")
PY
"$bin" profile "${small[@]}" --allocations=0 >/dev/null 2>"$tmp/err"
code=$?
[ "$code" = 2 ] && grep -q -- '--allocations' "$tmp/err" ||
  { echo "FAIL: --allocations=0 exited $code:"; cat "$tmp/err"; fail=1; }
# Without the option nothing is traced.
NEUROFLUX_QUIET=1 "$bin" profile "${small[@]}" --json >"$tmp/plain.json" 2>/dev/null
grep -q '"allocations"' "$tmp/plain.json" && { echo "FAIL: traced without --allocations"; fail=1; }
exit $fail
