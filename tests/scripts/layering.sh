#!/usr/bin/env bash
# Every #include points down the layers of docs/layering.md, and the check notices one that does
# not. Usage: layering.sh NEUROFLUX_BIN SOURCE_DIR BUILD_DIR (only SOURCE_DIR is used).
set -euo pipefail
src=$2
python3 "$src/scripts/check_layering.py" "$src"

# The check must fail on a tree with upward includes: models/ reaching into train/, and an
# operator in csrc/ reaching into the stripe executor built on it.
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
cp -r "$src/neuroflux" "$src/csrc" "$src/docs" "$tree/"
echo '#include "neuroflux/train/run.h"' >> "$tree/neuroflux/src/models/vgg.cpp"
echo '#include "neuroflux/rowcentric/row_centric.h"' >> "$tree/csrc/conv2d_rows/conv2d_rows.cpp"
if out=$(python3 "$src/scripts/check_layering.py" "$tree"); then
  echo "FAIL: includes from models/ into train/ and from csrc/ into rowcentric/ passed the check"
  exit 1
fi
for expected in 'neuroflux/src/models/vgg.cpp:.*models includes "neuroflux/train/run.h"' \
    'csrc/conv2d_rows/conv2d_rows.cpp:.*ops includes "neuroflux/rowcentric/row_centric.h"'; do
  grep -q "$expected" <<<"$out" || {
    echo "FAIL: the layering check did not name the upward include ($expected):"; echo "$out"
    exit 1; }
done
echo "layering: ok"
