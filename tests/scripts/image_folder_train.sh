#!/usr/bin/env bash
# `neuroflux train` on a generated image folder (data.name = "image_folder"): a one-epoch run
# exits 0 and writes its report and the decoded cache; eval and --resume of the run read that
# cache instead of decoding again; a corrupt image is exit 3 naming it, or skipped and counted in report.json
# with data.skip_bad_images. Usage: image_folder_train.sh NEUROFLUX_BIN SOURCE_DIR BUILD_DIR
set -u
bin=$1; src=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
unset NEUROFLUX_QUIET  # the checks read the log lines
check() {  # check DESCRIPTION COMMAND...: fails the test when COMMAND fails
  local what=$1; shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; fail=1; fi
}

# Two classes of 16x16 RGB PNGs, 24 each (dark and bright noise), written without any library.
python3 - "$tmp/images" <<'PY'
import os, random, struct, sys, zlib
root = sys.argv[1]
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
def png(path, width, height, pixels):
    rows = b"".join(b"\x00" + bytes(pixels[y * width * 3:(y + 1) * width * 3]) for y in range(height))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
random.seed(3)
for label, (low, high) in enumerate([(0, 120), (135, 255)]):
    folder = os.path.join(root, "class%d" % label)
    os.makedirs(folder)
    for i in range(24):
        png(os.path.join(folder, "%02d.png" % i), 16, 16, [random.randint(low, high) for _ in range(16 * 16 * 3)])
PY

train() {  # train OUT LOG [--set ...]
  local out=$1 log=$2; shift 2
  "$bin" train --config "$src/configs/quickstart.json" --set data.name=image_folder \
    --set data.root="$tmp/images" --set data.val_fraction=0.2 --set train.epochs=1 \
    --set train.batch_size=16 --out "$out" "$@" >"$log" 2>&1
}

train "$tmp/run" "$tmp/train.log"; code=$?
check "train exits 0 (got $code)" test "$code" = 0 || cat "$tmp/train.log"
check "report.json written" test -s "$tmp/run/report.json"
check "report.json counts no skipped image" grep -q '"skipped_images": 0' "$tmp/run/report.json"
check "the decoded cache is beside the run" compgen -G "$tmp/run/data-cache/images-*.nfimg" >/dev/null
check "48 images: 10 test, then 8 of 38 for validation" \
  grep -q "data image_folder: 30 train, 8 val, 10 test, 3x16x16" \
  "$tmp/train.log"

"$bin" eval --config "$tmp/run/config.json" --model "$tmp/run/model.pt" >"$tmp/eval.log" 2>&1
code=$?
check "eval exits 0 (got $code)" test "$code" = 0 || cat "$tmp/eval.log"
check "eval reads the cache, decodes nothing" grep -q "decoded images from" "$tmp/eval.log"
check "eval decodes nothing" bash -c "! grep -q 'decoding' '$tmp/eval.log'"

train "$tmp/run" "$tmp/resume.log" --resume; code=$?
check "--resume exits 0 (got $code)" test "$code" = 0 || cat "$tmp/resume.log"
check "--resume reads the cache, decodes nothing" grep -q "decoded images from" "$tmp/resume.log"

printf 'not a png' > "$tmp/images/class1/broken.png"
train "$tmp/bad" "$tmp/bad.log"; code=$?
check "a corrupt image is exit 3 (got $code)" test "$code" = 3
check "the error names the file" grep -q "images/class1/broken.png" "$tmp/bad.log" || cat "$tmp/bad.log"

train "$tmp/skip" "$tmp/skip.log" --set data.skip_bad_images=true; code=$?
check "skip_bad_images: exits 0 (got $code)" test "$code" = 0 || cat "$tmp/skip.log"
check "skip_bad_images: report.json counts it" grep -q '"skipped_images": 1' "$tmp/skip/report.json"
exit $fail
