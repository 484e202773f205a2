#!/usr/bin/env bash
# scripts/plot.py gives each method one colour in every panel and figure, and a budget where
# nothing fits reads "nothing fits this budget" instead of an empty legend.
# Usage: plot_colours.sh NEUROFLUX_BIN SOURCE_DIR BUILD_DIR (only SOURCE_DIR is used).
set -euo pipefail
src=$2
# matplotlib comes from Debian (python3-matplotlib); a python3 first on PATH (pyenv, a venv) may
# not see it.
for py in /usr/bin/python3 python3; do
  if "$py" -c "import matplotlib" 2>/dev/null; then
    MPLBACKEND=Agg exec "$py" "$src/tests/scripts/plot_colours_test.py" "$src"
  fi
done
echo "FAIL: no python3 with matplotlib (scripts/install-deps.sh installs python3-matplotlib)"
exit 1
