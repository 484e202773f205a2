#!/usr/bin/env bash
# A write that runs out of space (the activation cache, a checkpoint, the report, an offload
# file) ends the run with exit 3 and a message naming the file and the system's reason; no
# temporary is left, the previous checkpoint and report stay readable, and once there is space
# again --resume ends where an uninterrupted run ends.
# The full disk is a file size limit (ulimit -f, RLIMIT_FSIZE), which needs no privileges:
# neuroflux ignores SIGXFSZ, so a write past the limit fails with EFBIG ("File too large").
# The limit is per file, so each case sizes it between the files written before the one that
# must fail and that file. As root, where tmpfs can be mounted, the cache and checkpoint cases
# run once more on a file system that really fills up (ENOSPC, "No space left on device").
# 24 s here on an idle machine (2 cores); under nice 19 beside a busy benchmark 1 to 7 minutes.
# Usage: full_disk.sh NEUROFLUX_BIN SOURCE_DIR BUILD_DIR
set -u
bin=$1
tmp=$(mktemp -d)
mnt=$tmp/tmpfs
cleanup() {
  mountpoint -q "$mnt" 2>/dev/null && umount "$mnt"
  rm -rf "$tmp"
}
trap cleanup EXIT
export NEUROFLUX_QUIET=1 OMP_NUM_THREADS=1
fail=0

# limited KIB ARGS...: neuroflux with every file it writes capped at KIB KiB.
limited() {
  local kib=$1
  shift
  (ulimit -f "$kib" && exec "$bin" "$@")
}

# expect_full NAME RC STDERR FILE REASON: the run failed the way a full disk must fail it.
expect_full() {
  local name=$1 rc=$2 err=$3 file=$4 reason=$5
  if [ "$rc" != 3 ]; then
    echo "FAIL: $name: exit $rc, expected 3: $(tail -c 400 "$err")"; return 1
  fi
  if ! grep -q -- "$file.*$reason" "$err"; then
    echo "FAIL: $name: the message does not name $file and '$reason': $(cat "$err")"; return 1
  fi
  echo "ok: $name: exit 3, $(grep -o 'error: .*' "$err")"
}

# no_temporaries NAME OUT: every failed write removed its temporary.
no_temporaries() {
  local left
  left=$(find "$2" -name '*.tmp-*')
  [ -z "$left" ] || { echo "FAIL: $1: temporaries left behind: $left"; return 1; }
}

# checkpoint_at NAME OUT STEP: the checkpoint names step STEP and its files load as JSON / exist.
checkpoint_at() {
  python3 - "$2/checkpoint" "$3" <<'PY' || { echo "FAIL: $1: the previous checkpoint is gone"; return 1; }
import json, os, sys
d, step = sys.argv[1], int(sys.argv[2])
state = json.load(open(os.path.join(d, "state.json")))
assert state["step"] == step, f"checkpoint at step {state['step']}, expected {step}"
for key in ("model_file", "optimizer_file"):
    if state[key]:
        assert os.path.getsize(os.path.join(d, state[key])) > 0, state[key]
PY
}

# same_result NAME A B: the two runs' histories (times aside), exits and accuracies agree.
same_result() {
  python3 - "$2/report.json" "$3/report.json" <<'PY' || { echo "FAIL: $1: resumed run differs"; return 1; }
import json, sys
def outcome(path):
    r = json.load(open(path))
    h = [{k: v for k, v in e.items() if "second" not in k and "fault" not in k} for e in r["history"]]
    return h, r["final"]["exit_unit"], r["final"]["test_accuracy"], r["final"]["val_accuracy"]
a, b = outcome(sys.argv[1]), outcome(sys.argv[2])
if a != b:
    sys.exit(f"{a}\nvs\n{b}")
PY
  echo "ok: $1: resumed with space again, the same history, exit and test accuracy as an uninterrupted run"
}

# kill_after_checkpoint CONFIG OUT: a run SIGKILLed once it has written checkpoint 1.
kill_after_checkpoint() {
  "$bin" train --config "$1" --out "$2" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 1200); do
    [ -f "$2/checkpoint/state.json" ] && break
    sleep 0.02
  done
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
  [ -f "$2/checkpoint/state.json" ] && [ ! -f "$2/report.json" ]
}

step_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["step"])' "$1/checkpoint/state.json"; }

# ---- the activation cache ----------------------------------------------------------------
# NeuroFlux with disk caches by a pinned plan: block 0 (units 0-1) caches 1.4 MB of training
# inputs, block 1 (unit 2) 2.8 MB. Under 2 MiB per file, block 0's caches and checkpoint 1 fit;
# block 1's training cache does not.
cat > "$tmp/cache.json" <<JSON
{ "method": "neuroflux", "seed": 3, "threads": 1,
  "model": {"name": "simplecnn", "width": 0.25},
  "data": {"name": "synthetic", "image_size": 16, "channels": 1, "num_classes": 4,
           "train_size": 3000, "test_size": 200},
  "train": {"epochs": 2, "batch_size": 16, "max_batch_size": 64},
  "neuroflux": {"progressive_exit": false, "aux": "fixed", "aux_width": 16, "plan": "$tmp/plan.json",
                "cache": {"where": "disk"}} }
JSON
"$bin" plan --config "$tmp/cache.json" --set neuroflux.plan='""' --save "$tmp/plan.json" \
  >/dev/null || { echo "FAIL: neuroflux plan"; exit 1; }
python3 - "$tmp/plan.json" <<'PY' || exit 1
import json, sys
plan = json.load(open(sys.argv[1]))
plan["blocks"] = [{"units": u, "batch_size": 16, "epochs": 1, "lr": 0.05, "cache_batch_size": 64,
                   "unit_modes": ["plain"] * (u[1] - u[0] + 1), "predicted_peak_bytes": 0,
                   "predicted_seconds": 0} for u in ([0, 1], [2, 2], [3, 3])]
json.dump(plan, open(sys.argv[1], "w"))
PY
"$bin" train --config "$tmp/cache.json" --out "$tmp/cache-ref" >/dev/null ||
  { echo "FAIL: cache: uninterrupted run"; exit 1; }

check_cache() {  # check_cache NAME OUT RC STDERR REASON
  expect_full "$1" "$3" "$4" "cache/block1-train.nfcache" "$5" &&
    checkpoint_at "$1" "$2" 1 && no_temporaries "$1" "$2" &&
    "$bin" train --config "$tmp/cache.json" --out "$2" --resume >/dev/null &&
    same_result "$1" "$tmp/cache-ref" "$2"
}
limited 2048 train --config "$tmp/cache.json" --out "$tmp/cache" >/dev/null 2>"$tmp/cache.err"
check_cache "cache (file size limit)" "$tmp/cache" $? "$tmp/cache.err" "File too large" || fail=1

# ---- a checkpoint ------------------------------------------------------------------------
# Backprop: checkpoint 1 is written without a limit (the run is killed after it); resumed under
# 64 KiB per file, the run writes its config (2 KB) and fails on checkpoint 2's weights (87 KB).
cat > "$tmp/backprop.json" <<JSON
{ "method": "backprop", "seed": 3, "threads": 1,
  "model": {"name": "simplecnn", "width": 0.25},
  "data": {"name": "synthetic", "image_size": 16, "channels": 1, "num_classes": 4,
           "train_size": 3000, "test_size": 200},
  "train": {"epochs": 3, "batch_size": 16} }
JSON
"$bin" train --config "$tmp/backprop.json" --out "$tmp/backprop-ref" >/dev/null ||
  { echo "FAIL: checkpoint: uninterrupted run"; exit 1; }

check_checkpoint() {  # check_checkpoint NAME OUT RC STDERR REASON STEP
  expect_full "$1" "$3" "$4" "checkpoint/step-$(($6 + 1))-model.pt" "$5" &&
    checkpoint_at "$1" "$2" "$6" && no_temporaries "$1" "$2" &&
    "$bin" train --config "$tmp/backprop.json" --out "$2" --resume >/dev/null &&
    same_result "$1" "$tmp/backprop-ref" "$2"
}
if kill_after_checkpoint "$tmp/backprop.json" "$tmp/ckpt"; then
  step=$(step_of "$tmp/ckpt")
  limited 64 train --config "$tmp/backprop.json" --out "$tmp/ckpt" --resume >/dev/null \
    2>"$tmp/ckpt.err"
  check_checkpoint "checkpoint (file size limit)" "$tmp/ckpt" $? "$tmp/ckpt.err" \
    "File too large" "$step" || fail=1
else
  echo "FAIL: checkpoint: the run was not killed between its first checkpoint and its end"; fail=1
fi

# ---- the report --------------------------------------------------------------------------
# A finished run resumed with --resume exports again: config.json, model.pt, then report.json.
# A tiny network trained for many epochs has a report (its history) larger than its model, so
# a limit between the two lets the model through and stops the report.
cat > "$tmp/tiny.json" <<JSON
{ "method": "backprop", "seed": 3, "threads": 1,
  "model": {"name": "simplecnn", "width": 0.0625, "batch_norm": false},
  "data": {"name": "synthetic", "image_size": 8, "channels": 1, "num_classes": 2,
           "train_size": 100, "test_size": 20},
  "train": {"epochs": 60, "batch_size": 16} }
JSON
"$bin" train --config "$tmp/tiny.json" --out "$tmp/report" >/dev/null ||
  { echo "FAIL: report: first run"; exit 1; }
cp "$tmp/report/report.json" "$tmp/report-before.json"
model_bytes=$(stat -c %s "$tmp/report/model.pt")
report_bytes=$(stat -c %s "$tmp/report/report.json")
kib=$(((model_bytes + report_bytes) / 2 / 1024))
if [ $((kib * 1024)) -le "$model_bytes" ] || [ $((kib * 1024)) -ge "$report_bytes" ]; then
  echo "FAIL: report: model.pt ($model_bytes B) is not smaller than report.json ($report_bytes B)"
  fail=1
else
  limited "$kib" train --config "$tmp/tiny.json" --out "$tmp/report" --resume >/dev/null \
    2>"$tmp/report.err"
  rc=$?
  if expect_full "report (file size limit)" $rc "$tmp/report.err" "report.json" "File too large" &&
     no_temporaries report "$tmp/report"; then
    if cmp -s "$tmp/report/report.json" "$tmp/report-before.json"; then
      echo "ok: report: the previous report.json is intact"
    else
      echo "FAIL: report: the previous report.json changed"; fail=1
    fi
    cp -r "$tmp/report" "$tmp/report-again"
    "$bin" train --config "$tmp/tiny.json" --out "$tmp/report-again" --resume >/dev/null &&
      same_result report "$tmp/report" "$tmp/report-again" || fail=1
  else
    fail=1
  fi
fi

# ---- offloaded activations ----------------------------------------------------------------
# Backprop with memory.strategy offload at 80% of plain backprop's peak offloads a boundary's
# input to a file in memory.offload_dir (128 KiB a slot); under 64 KiB per file that file cannot
# be made. (The schedule is chosen from measured times: one without offloading fails later, on a
# checkpoint, and is said, not failed.)
cat > "$tmp/offload.json" <<JSON
{ "method": "backprop", "seed": 3, "threads": 1, "model": {"name": "resnet18", "width": 0.125},
  "data": {"name": "synthetic", "image_size": 16, "channels": 1, "num_classes": 4,
           "train_size": 200, "test_size": 100},
  "train": {"epochs": 1, "batch_size": 16},
  "memory": {"offload_dir": "$tmp/offload"} }
JSON
mkdir -p "$tmp/offload"
if "$bin" train --config "$tmp/offload.json" --out "$tmp/offload-peak" >/dev/null; then
  budget=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["peak_memory_bytes"] * 8 // 10)' \
           "$tmp/offload-peak/report.json")
  limited 64 train --config "$tmp/offload.json" --out "$tmp/offload-run" \
    --set memory.strategy=offload --set memory.budget="$budget" >/dev/null 2>"$tmp/offload.err"
  rc=$?
  if [ $rc = 3 ] && grep -q "checkpoint/step-1" "$tmp/offload.err"; then
    echo "skipped: offload file: the schedule chosen this time offloads nothing"
  else
    expect_full "offload file (file size limit)" $rc "$tmp/offload.err" "offload_dir" \
      "File too large" || fail=1
  fi
else
  echo "FAIL: offload: plain backprop run"; fail=1
fi

# ---- a file system that fills up (root, where tmpfs can be mounted) -------------------------
mkdir -p "$mnt"
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=3m neuroflux-full-disk "$mnt" 2>/dev/null; then
  # 3 MiB: block 0's caches (1.6 MB) and checkpoint 1 fit, block 1's training cache does not.
  "$bin" train --config "$tmp/cache.json" --out "$mnt/cache" >/dev/null 2>"$tmp/tmpfs-cache.err"
  rc=$?
  mount -o remount,size=64m "$mnt"
  check_cache "cache (full tmpfs)" "$mnt/cache" $rc "$tmp/tmpfs-cache.err" \
    "No space left on device" || fail=1
  rm -rf "${mnt:?}"/*
  # Checkpoint 1 written with room to spare, then the file system filled to within 48 KiB.
  if kill_after_checkpoint "$tmp/backprop.json" "$mnt/ckpt"; then
    step=$(step_of "$mnt/ckpt")
    head -c $(($(stat -f -c '%a * %S' "$mnt") - 48 * 1024)) /dev/zero > "$mnt/filler" 2>/dev/null
    "$bin" train --config "$tmp/backprop.json" --out "$mnt/ckpt" --resume >/dev/null \
      2>"$tmp/tmpfs-ckpt.err"
    rc=$?
    rm -f "$mnt/filler"
    check_checkpoint "checkpoint (full tmpfs)" "$mnt/ckpt" $rc "$tmp/tmpfs-ckpt.err" \
      "No space left on device" "$step" || fail=1
  else
    echo "FAIL: checkpoint (full tmpfs): the run was not killed after its first checkpoint"; fail=1
  fi
else
  echo "skipped: a file system that fills up (needs root and tmpfs)"
fi
exit $fail
