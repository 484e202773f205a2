#!/bin/sh
# Builds /tmp/rowconv_bench from the operator and memory-meter sources only (see main.cpp).
set -e
W=$(cd "$(dirname "$0")/../.." && pwd)
g++ -O2 -std=c++17 -D_GLIBCXX_USE_CXX11_ABI=1 -I"$W/neuroflux/include" -I"$W/neuroflux/src" -I"$W" \
  -isystem /usr/include/torch/csrc/api/include -o /tmp/rowconv_bench "$W/scripts/rowconv_bench/main.cpp" \
  "$W"/csrc/rowconv/*.cpp "$W"/csrc/rowconv/cpu/*.cpp "$W"/csrc/rowconv/autograd/*.cpp \
  "$W"/neuroflux/src/memory/*.cpp "$W/neuroflux/src/util/size_format.cpp" \
  -Wl,--no-as-needed -ltorch -ltorch_cpu -lc10 -lpthread
