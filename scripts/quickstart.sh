#!/usr/bin/env bash
# The first thing to run: NeuroFlux and backprop side by side under one memory budget (14.4 MiB,
# a third of what backprop needs at batch 128) on Fashion-MNIST, vgg11 at width 0.25, 3 epochs.
# Backprop has to shrink its batch to fit; NeuroFlux plans blocks with their own batches. Ends
# with a table: test accuracy, time to the target accuracy, peak memory against the budget,
# exported parameters. About 3.5 minutes on 2 cores.
#
#   scripts/quickstart.sh [neuroflux bench options, e.g. --out DIR --set train.epochs=1]
#
# NEUROFLUX_BIN names the executable (default: build/neuroflux/neuroflux).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${NEUROFLUX_BIN:-build/neuroflux/neuroflux}
exec "$bin" bench --config configs/budget-fmnist.json --methods backprop,neuroflux \
  --out runs/quickstart "$@"
