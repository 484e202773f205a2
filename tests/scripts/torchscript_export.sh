#!/usr/bin/env bash
# model.pt runs without NeuroFlux: the exported models of three tiny runs (NeuroFlux's early exit
# with an auxiliary head and batch norm; the same with a copies head; a row-centric ResNet trained
# by backprop) are loaded by
# Python with torch.jit.load and give the logits `neuroflux eval --save-outputs` computed with the
# C++ network, to float tolerance. Fails when model.pt has no forward, a graph calls a neuroflux::
# operator (plain PyTorch has none), or the logits differ.
# Usage: torchscript_export.sh NEUROFLUX_BIN SOURCE_DIR BUILD_DIR
# Python: Debian's /usr/bin/python3 with python3-torch (scripts/install-deps.sh), or $NEUROFLUX_PYTHON.
set -u
bin=$1
py=${NEUROFLUX_PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export NEUROFLUX_QUIET=1 OMP_NUM_THREADS=1
if ! "$py" -c "import torch" 2>"$tmp/py.err"; then
  echo "FAIL: $py cannot import torch (scripts/install-deps.sh installs python3-torch):"
  cat "$tmp/py.err"; exit 1
fi
fail=0

data='"data": {"name": "synthetic", "image_size": 16, "channels": 1, "num_classes": 4,
               "train_size": 640, "test_size": 96}'
# exit_tolerance 1: the shallowest head is always within it, so model.pt is unit 0 + its
# auxiliary head (and full_model.pt the whole chain).
cat > "$tmp/neuroflux.json" <<JSON
{ "method": "neuroflux", "seed": 5, "threads": 1,
  "model": {"name": "simplecnn", "width": 0.25}, $data,
  "train": {"epochs": 1, "batch_size": 32, "max_batch_size": 64},
  "neuroflux": {"progressive_exit": false, "aux": "fixed", "aux_width": 16,
                "unit_modes": "plain", "exit_tolerance": 1.0} }
JSON
# Row-centric: in C++ the basic blocks run on the conv2d_rows operator; the export is plain convs.
cat > "$tmp/rows.json" <<JSON
{ "method": "backprop", "seed": 5, "threads": 1,
  "model": {"name": "resnet18", "width": 0.125, "batch_norm": false,
            "row_centric": {"stripes": 2}}, $data,
  "train": {"epochs": 1, "batch_size": 32} }
JSON

# AugLocal's copies heads: unit 0's head holds fresh copies of units 1 and 2.
cat > "$tmp/copies.json" <<JSON
{ "method": "neuroflux", "seed": 5, "threads": 1,
  "model": {"name": "simplecnn", "width": 0.25}, $data,
  "train": {"epochs": 1, "batch_size": 32, "max_batch_size": 64},
  "neuroflux": {"progressive_exit": false, "aux": "copies", "aux_depth": 2,
                "unit_modes": "plain", "exit_tolerance": 1.0} }
JSON

check() {  # check MODEL OUTPUTS: Python's logits for the saved inputs against the saved logits
  "$py" - "$1" "$2" <<'PY'
import json, sys
import torch

model_path, outputs_path = sys.argv[1], sys.argv[2]
extra = {"neuroflux_export.json": ""}
model = torch.jit.load(model_path, map_location="cpu", _extra_files=extra)
if not extra["neuroflux_export.json"]:
    sys.exit(f"FAIL: {model_path}: no neuroflux_export.json inside")
description = json.loads(extra["neuroflux_export.json"])
if not hasattr(model, "forward"):
    sys.exit(f"FAIL: {model_path}: the TorchScript module has no forward")
graph = str(model.inlined_graph)
if "neuroflux::" in graph:
    sys.exit(f"FAIL: {model_path}: the graph calls NeuroFlux's own operators")
saved = torch.load(outputs_path)
inputs, expected = saved["inputs"], saved["logits"]
model.eval()
with torch.no_grad():
    logits = model(inputs)
    single = model(inputs[:1])
try:
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(single, expected[:1], rtol=1e-4, atol=1e-5)
except AssertionError as error:
    sys.exit(f"FAIL: {model_path}: Python's logits differ from neuroflux eval's:\n{error}")
head = "classifier" if description["head"]["classifier"] else description["head"]["family"] + " head"
print(f"ok: {model_path.split('/')[-2]}/{model_path.split('/')[-1]}: "
      f"{description['model']['name']} units 0-{description['exit_unit']} + {head}, "
      f"{inputs.shape[0]} images, max |logit difference| "
      f"{(logits - expected).abs().max().item():.2e}")
PY
}

for run in neuroflux rows copies; do
  if ! "$bin" train --config "$tmp/$run.json" --out "$tmp/$run" >"$tmp/$run.log" 2>&1; then
    echo "FAIL: $run: training failed:"; cat "$tmp/$run.log"; fail=1; continue
  fi
  for model in model full_model; do
    [ -f "$tmp/$run/$model.pt" ] || continue
    if ! "$bin" eval --config "$tmp/$run/config.json" --model "$tmp/$run/$model.pt" \
         --full /nonexistent --batch 48 --save-outputs "$tmp/$run/$model-outputs.pt" \
         >"$tmp/$run-$model-eval.log" 2>&1; then
      echo "FAIL: $run: neuroflux eval $model.pt failed:"; cat "$tmp/$run-$model-eval.log"
      fail=1; continue
    fi
    check "$tmp/$run/$model.pt" "$tmp/$run/$model-outputs.pt" || fail=1
  done
done
# The NeuroFlux run must have exported an early exit with an auxiliary head.
[ -f "$tmp/neuroflux/full_model.pt" ] || { echo "FAIL: neuroflux: no full_model.pt"; fail=1; }
exit $fail
