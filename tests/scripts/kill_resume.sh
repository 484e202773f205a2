#!/usr/bin/env bash
# A run SIGKILLed in profiling, cache writing, export, or a backprop epoch under offloading
# resumes with --resume to exactly the uninterrupted run (kill_resume.py; scripts/kill_resume.sh
# runs all 13 points). 20 s here on an idle machine (2 cores), 1-2 minutes beside other work.
# Usage: kill_resume.sh NEUROFLUX_BIN SOURCE_DIR BUILD_DIR
set -u
exec python3 "$(dirname "$0")/kill_resume.py" "$1" --points ci
