#!/usr/bin/env bash
# scripts/experiments.py runs a one-cell grid, copies each method's validation curve into
# summary.json, resumes without re-running the finished cell, keeps the curves once the run
# folders are deleted, and scripts/plot.py draws all four figures from what is left.
# Usage: experiments_grid.sh NEUROFLUX_BIN SOURCE_DIR BUILD_DIR
set -u
bin=$1 src=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export NEUROFLUX_QUIET=1 NEUROFLUX_BIN=$bin
fail=0
mkdir -p "$tmp/configs"
cat > "$tmp/configs/tiny.json" <<'JSON'
{
  "method": "backprop", "seed": 1,
  "model": { "name": "simplecnn", "width": 0.25 },
  "data": { "name": "fashion-mnist", "val_fraction": 0.1, "train_limit": 600, "test_limit": 200 },
  "train": { "epochs": 2, "batch_size": 32, "lr": 0.05 },
  "experiment": { "methods": "backprop,neuroflux", "budget_fractions": [1.0] }
}
JSON
grid() { python3 "$src/scripts/experiments.py" --results "$tmp/results" "$tmp/configs/tiny.json"; }
summary=$tmp/results/tiny/summary.json
curve_points() {  # curve_points METHOD: how many evaluations summary.json holds for it
  python3 -c "import json,sys; s=json.load(open('$summary'))
print(len(s['cells'][0].get('histories', {}).get('$1', [])))"
}

grid > "$tmp/grid.log" 2>&1 || { cat "$tmp/grid.log"; echo "FAIL: the grid did not run"; exit 1; }
for m in backprop neuroflux; do
  n=$(curve_points $m)
  if [ "$n" -ge 1 ]; then echo "ok: summary.json keeps $n evaluations of $m"
  else echo "FAIL: summary.json has no curve for $m"; fail=1; fi
done

# Resume: the finished cell is not run again, and its curves survive losing the run folders.
stamp=$(stat -c %Y "$tmp/results/tiny/budget-1.0/bench.json")
rm -rf "$tmp/results/tiny/budget-1.0/backprop" "$tmp/results/tiny/budget-1.0/neuroflux"
sleep 1
grid > "$tmp/grid2.log" 2>&1 || { cat "$tmp/grid2.log"; echo "FAIL: the resumed grid failed"; fail=1; }
if [ "$(stat -c %Y "$tmp/results/tiny/budget-1.0/bench.json")" != "$stamp" ]; then
  echo "FAIL: the resumed grid re-ran a finished cell"; fail=1
else echo "ok: the resumed grid skipped the finished cell"; fi
if [ "$(curve_points backprop)" -ge 1 ]; then echo "ok: curves kept without the run folders"
else echo "FAIL: resuming without run folders dropped the curves"; fail=1; fi

if python3 "$src/scripts/plot.py" "$tmp/results/tiny" > "$tmp/plot.log" 2>&1; then
  for png in accuracy_vs_time peak_vs_budget speedup_vs_budget exported_params; do
    if [ -s "$tmp/results/tiny/$png.png" ]; then echo "ok: $png.png drawn"
    else echo "FAIL: $png.png missing"; fail=1; fi
  done
else
  cat "$tmp/plot.log"; echo "FAIL: plot.py failed"; fail=1
fi
exit $fail
