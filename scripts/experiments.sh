#!/usr/bin/env bash
# Runs the experiment grid of configs/experiments/*.json (or the files given) with
# `neuroflux bench`, writing results/<name>/...; resumable: finished cells are skipped.
#   scripts/experiments.sh [--bisect] [--quick] [configs/experiments/X.json ...]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/neuroflux/neuroflux ] || scripts/build.sh
exec python3 scripts/experiments.py "$@"
