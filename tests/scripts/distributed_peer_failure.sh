#!/usr/bin/env bash
# A rank killed or hung mid-training is reported by the survivor within distributed.timeout: rank 0 exits
# with code 5 and a message naming itself and the failed operation, never hangs. The two ranks
# are started as on two machines (--rank/--world-size/--master), on loopback, on a free port.
# Usage: distributed_peer_failure.sh NEUROFLUX_BIN SOURCE_DIR BUILD_DIR
set -u
bin=$1
tmp=$(mktemp -d); r0=; r1=
trap 'kill -9 $r0 $r1 2>/dev/null; rm -rf "$tmp"' EXIT
export NEUROFLUX_QUIET=1
timeout_s=8

cat > "$tmp/config.json" <<JSON
{ "method": "backprop", "seed": 1, "threads": 1,
  "model": {"name": "simplecnn", "width": 0.25},
  "data": {"name": "synthetic", "image_size": 16, "channels": 1, "num_classes": 4,
           "train_size": 20000, "test_size": 64},
  "train": {"epochs": 50, "batch_size": 16},
  "distributed": {"timeout": $timeout_s} }
JSON
start() {  # start RANK
  "$bin" train --config "$tmp/config.json" --out "$tmp/out-$2" --rank "$1" --world-size 2 \
    --master "127.0.0.1:$port" > "$tmp/rank$1-$2.log" 2>&1 &
}
fail=0
# check_lost_peer SIGNAL NAME: KILL (a rank that dies) or STOP (a rank that hangs: its sockets
# stay open, so only the timeout can tell).
check_lost_peer() {
  local signal=$1 name=$2
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  start 0 "$name"; r0=$!
  start 1 "$name"; r1=$!
  # Rendezvous and data take a few seconds; the 50 epochs take minutes: stop rank 1 in between.
  sleep 6
  kill -0 $r0 2>/dev/null || { echo "FAIL: $name: rank 0 ended early"; cat "$tmp/rank0-$name.log"; return 1; }
  kill -"$signal" $r1
  local lost_at=$(date +%s.%N)
  for _ in $(seq 1 $(( (timeout_s + 10) * 10 ))); do
    kill -0 $r0 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 $r0 2>/dev/null; then
    echo "FAIL: $name: rank 0 still running $((timeout_s + 10)) s after rank 1 was lost"; return 1
  fi
  wait $r0; local code=$?
  kill -9 $r1 2>/dev/null
  local took=$(python3 -c "import time; print(round(time.time() - $lost_at, 1))")
  if [ "$code" != 5 ]; then echo "FAIL: $name: rank 0 exit code $code, expected 5"; cat "$tmp/rank0-$name.log"; return 1; fi
  grep -q "rank 0: .*another rank died, hung or is unreachable" "$tmp/rank0-$name.log" ||
    { echo "FAIL: $name: rank 0's message does not name the lost peer:"; cat "$tmp/rank0-$name.log"; return 1; }
  python3 -c "import sys; sys.exit(0 if $took <= $timeout_s + 2 else 1)" ||
    { echo "FAIL: $name: rank 0 took $took s to report (timeout $timeout_s s)"; return 1; }
  echo "ok: $name: rank 0 reported the lost rank after $took s (exit 5): $(grep -o 'rank 0: .*' "$tmp/rank0-$name.log" | head -c 200)"
}
check_lost_peer KILL killed || fail=1
check_lost_peer STOP hung || fail=1
exit $fail
