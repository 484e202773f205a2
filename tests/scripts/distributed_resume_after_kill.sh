#!/usr/bin/env bash
# A distributed run (data parallel, block pipeline; 2 ranks) killed with SIGKILL after its first
# checkpoints resumes with --resume and ends exactly where an uninterrupted run ends (same seed,
# one thread: identical losses and accuracies). One-process runs killed anywhere:
# kill_resume.sh.
# Usage: distributed_resume_after_kill.sh NEUROFLUX_BIN SOURCE_DIR BUILD_DIR
set -u
bin=$1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export NEUROFLUX_QUIET=1
fail=0

# Data parallel on 2 ranks: the whole job (launcher and ranks) is killed once both ranks have
# checkpointed epoch 1, and --resume restarts every rank from its checkpoint. An epoch here
# takes about 1.5 s, so the kill lands well before the next checkpoints.
check_distributed_resume() {  # check_distributed_resume NAME CONFIG [--set ...]
  local name=$1 config=$2 out=$tmp/$1
  shift 2
  "$bin" train --config "$config" --out "$out-full" --nproc 2 "$@" >/dev/null 2>&1 ||
    { echo "FAIL: $name full run"; return 1; }
  setsid "$bin" train --config "$config" --out "$out-killed" --nproc 2 "$@" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 1200); do
    grep -qsE '"epochs_done": *1,' "$out-killed/checkpoint/state.json" &&
      grep -qsE '"epochs_done": *1,' "$out-killed/rank-1/checkpoint/state.json" && break
    sleep 0.05
  done
  kill -9 -- -"$pid" 2>/dev/null; wait $pid 2>/dev/null
  [ ! -f "$out-killed/report.json" ] || { echo "FAIL: $name finished before the kill"; return 1; }
  "$bin" train --config "$config" --out "$out-killed" --nproc 2 --resume "$@" >/dev/null 2>&1 ||
    { echo "FAIL: $name resume"; return 1; }
  cut -d, -f1-5 "$out-full/history.csv" > "$tmp/a"
  cut -d, -f1-5 "$out-killed/history.csv" > "$tmp/b"
  if ! diff "$tmp/a" "$tmp/b"; then echo "FAIL: $name: resumed history differs"; return 1; fi
  echo "ok: $name: both ranks resumed to the uninterrupted run's history"
}
cat > "$tmp/dist.json" <<JSON
{ "method": "backprop", "seed": 3, "threads": 1,
  "model": {"name": "simplecnn", "width": 0.25, "batch_norm": false},
  "data": {"name": "synthetic", "image_size": 16, "channels": 1, "num_classes": 4,
           "train_size": 12000, "test_size": 200},
  "train": {"epochs": 3, "batch_size": 16},
  "distributed": {"timeout": 30} }
JSON
check_distributed_resume data-parallel "$tmp/dist.json" || fail=1
check_distributed_resume pipeline "$tmp/dist.json" --set method=local --set distributed.mode=pipeline ||
  fail=1
exit $fail
