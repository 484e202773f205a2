#!/usr/bin/env bash
# 2 ranks x 1 thread against 1 rank x 2 threads on this 2-core machine: vgg11 (width 0.25) on
# 12000 Fashion-MNIST images (10800 train), 1 epoch, data parallel (backprop) and pipeline (local), plus the
# pipeline plan's predicted stage times. Writes runs/dist-bench/*/report.json and summary.txt.
set -eu
bin=${1:-build/neuroflux/neuroflux}
cfg=configs/vgg11-fmnist.json
out=runs/dist-bench
common="--set data.train_limit=12000 --set data.test_limit=2000 --set train.epochs=1 --set train.batch_size=64"
export NEUROFLUX_QUIET=1
"$bin" train --config $cfg $common --set method=backprop --threads 2 --out $out/data-1x2 >/dev/null
"$bin" train --config $cfg $common --set method=backprop --threads 1 --nproc 2 --out $out/data-2x1 >/dev/null
"$bin" train --config $cfg $common --set method=local --threads 2 --out $out/local-1x2 >/dev/null
"$bin" train --config $cfg $common --set method=local --threads 1 --nproc 2 \
  --set distributed.mode=pipeline --out $out/pipe-2x1 >/dev/null
python3 - $out <<'PY' | tee $out/summary.txt
import json, sys
out = sys.argv[1]
for name in ["data-1x2", "data-2x1", "local-1x2", "pipe-2x1"]:
    r = json.load(open(f"{out}/{name}/report.json"))
    ips = r["train_samples"] * r["epochs"] / r["train_seconds"]
    print(f"{name:10s} method {r['method']:9s} world {r.get('world_size', 1)}  train {r['train_seconds']:.1f} s"
          f"  {ips:.1f} images/s  test acc {r['final']['test_accuracy']:.4f}")
    if "rank_peak_memory_bytes" in r:
        print("   per-rank peaks (bytes):", r["rank_peak_memory_bytes"])
    if "pipeline" in r:
        for b in r["blocks"]:
            print(f"   stage rank {b['rank']} units {b['units'][0]}-{b['units'][1]}: predicted "
                  f"{b['predicted_seconds_per_batch']:.4f} s/batch, measured compute "
                  f"{b['measured_seconds_per_batch']:.4f}, wall {b['wall_seconds_per_batch']:.4f};"
                  f" peak predicted {b['predicted_peak_bytes']} measured {b['peak_memory_bytes']}")
PY
