#!/usr/bin/env bash
# Every #include points down the layers of docs/layering.md, and the check notices one that does
# not. Usage: layering.sh NEUROFLUX_BIN SOURCE_DIR BUILD_DIR (only SOURCE_DIR is used).
set -euo pipefail
src=$2
python3 "$src/scripts/check_layering.py" "$src"

# The check must fail on a tree with an upward include: models/ reaching into train/.
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
cp -r "$src/neuroflux" "$src/csrc" "$src/docs" "$tree/"
echo '#include "neuroflux/train/run.h"' >> "$tree/neuroflux/src/models/vgg.cpp"
if out=$(python3 "$src/scripts/check_layering.py" "$tree"); then
  echo "FAIL: an include from models/ into train/ passed the layering check"
  exit 1
fi
grep -q 'neuroflux/src/models/vgg.cpp:.*models includes "neuroflux/train/run.h"' <<<"$out" || {
  echo "FAIL: the layering check did not name the upward include:"; echo "$out"; exit 1; }
echo "layering: ok"
