#!/usr/bin/env bash
# Installs every dependency (idempotent), builds NeuroFlux (Release, into build/) and trains
# configs/quickstart.json on Fashion-MNIST. Usage: scripts/setup.sh [--no-train]
set -euo pipefail
cd "$(dirname "$0")/.."

train=1
[ "${1:-}" = "--no-train" ] && train=0

scripts/install-deps.sh
scripts/build.sh

if [ "$train" = 1 ]; then
  out=runs/quickstart
  ./build/neuroflux/neuroflux train --config configs/quickstart.json --out "$out"
  echo "report written to $(pwd)/$out/report.json"
fi
