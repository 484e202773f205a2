#!/usr/bin/env bash
# Training throughput of NeuroFlux's C++ loop against PyTorch from Python (Debian's
# python3-torch) on the same networks, batches and threads; writes results/throughput/.
#   scripts/peer_bench.sh [--models vgg11,resnet18,mobilenetv2] [--batches 16,128]
#                         [--repeats 2] [--variants cache,nocache,glibc,jemalloc] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
missing=()
for p in python3-torch libjemalloc2; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
[ -x build/neuroflux/neuroflux ] || scripts/build.sh
exec /usr/bin/python3 scripts/throughput.py "$@"
