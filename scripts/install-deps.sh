#!/usr/bin/env bash
# Debian 12 packages NeuroFlux needs. Installs only what is missing, so re-running is cheap.
set -euo pipefail

packages=(
  build-essential cmake ccache git
  ninja-build         # a new source file costs one compile, not a PCH + full rebuild as with make
  libtorch-dev        # LibTorch 1.13.1 (CPU) with c10d
  libgloo-dev         # headers c10d's Gloo backend needs
  libopenblas0-pthread  # LibTorch calls libblas.so.3: OpenBLAS is ~35x the reference BLAS
  nlohmann-json3-dev libcxxopts-dev catch2 zlib1g-dev
  libstb-dev          # stb_image: JPEG and PNG decoding for data.name = "image_folder"
  python3 python3-matplotlib
  python3-torch       # tests/scripts/torchscript_export.sh loads model.pt in plain PyTorch
  dataset-fashion-mnist
)

source "$(dirname "${BASH_SOURCE[0]}")/lib/apt_install.sh"
install_missing "${packages[@]}"

# Debian picks the BLAS with the highest priority; make sure it is OpenBLAS, not the reference.
if command -v update-alternatives >/dev/null; then
  blas=$(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null |
         awk '/^Value:/ {print $2}')
  case "$blas" in
    *openblas*) ;;
    *) echo "warning: libblas.so.3 points to ${blas:-nothing}, not OpenBLAS: training will be slow" ;;
  esac
fi
