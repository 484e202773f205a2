#!/usr/bin/env bash
# Checks that a change kept training behaviour identical: runs `neuroflux bench` (backprop, local,
# neuroflux) of vgg11 at a third of backprop's peak with two binaries and compares every
# history entry (losses, accuracies, batch sizes, rates; not times) and the test accuracies.
# NeuroFlux's plan depends on measured times, so both runs train by the plan the first one made.
# Usage: scripts/same_histories.sh BEFORE_BIN AFTER_BIN [OUT_DIR]   (exit 1 when they differ)
# Each binary must come from its own build directory (a worktree of the old commit, say): a
# copied binary still loads libneuroflux.so from the build it was linked in.
# Takes about 3 minutes here (one thread, 6,000 images, 3 epochs).
set -euo pipefail
before=$(realpath "$1"); after=$(realpath "$2"); out=${3:-/tmp/neuroflux-same-histories}
cd "$(dirname "$0")/.."
common=(-c configs/vgg11-fmnist.json --threads 1 --set data.train_limit=6000
        --set data.test_limit=2000 --set train.epochs=3)
rm -rf "$out"; mkdir -p "$out"
"$before" train "${common[@]}" --set method=backprop -o "$out/peak" > "$out/peak.log" 2>&1
peak=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['peak_memory_bytes'])" \
       "$out/peak/report.json")
budget=$((peak / 3))
echo "backprop's peak $peak B; budget $budget B"
"$before" plan "${common[@]}" --set memory.budget=$budget --save "$out/plan.json" \
  > "$out/plan.log" 2>&1
for side in before after; do
  bin=$before; [ "$side" = after ] && bin=$after
  "$bin" bench "${common[@]}" --set memory.budget=$budget --set neuroflux.plan="$out/plan.json" \
    -o "$out/$side" > "$out/$side.log" 2>&1 || echo "$side: bench exited $? (see $out/$side.log)"
done
python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
timing = ("second", "time", "fault", "img")
def history(side, method):
    report = json.load(open(os.path.join(out, side, method, "report.json")))
    entries = [{k: v for k, v in e.items() if not any(t in k for t in timing)}
               for e in report["history"]]
    return entries, report["final"]["test_accuracy"], report["peak_memory_bytes"]
same = True
for method in ("backprop", "local", "neuroflux"):
    (ha, ta, pa), (hb, tb, pb) = history("before", method), history("after", method)
    ok = ha == hb and ta == tb
    same &= ok
    print(f"{method}: {'identical' if ok else 'DIFFERENT'} ({len(ha)} history entries; "
          f"test accuracy {ta} / {tb}; peak {pa} / {pb} B)")
sys.exit(0 if same else 1)
PY
