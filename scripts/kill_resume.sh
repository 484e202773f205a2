#!/usr/bin/env bash
# Kill anywhere, the long form: SIGKILLs a NeuroFlux run (profiled, and by a pinned plan with disk
# caches) and a backprop run with memory.strategy offload at 13 points over profiling, training,
# cache writing and export, resumes each with --resume and compares it with the uninterrupted run
# (tests/scripts/kill_resume.py). The CTest entry runs 4 of them. 41 s here on an idle machine
# (2 cores), 2-4 minutes beside other work.
# Usage: scripts/kill_resume.sh [--points N|all] [--keep DIR]   (builds first; default all)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh >/dev/null
points=(--points all)
for arg in "$@"; do [ "$arg" = --points ] && points=(); done
exec python3 tests/scripts/kill_resume.py build/neuroflux/neuroflux "${points[@]}" "$@"
