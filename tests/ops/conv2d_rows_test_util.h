// Random conv2d_rows calls shared by the CPU test (against at::conv2d) and the CUDA test (against
// the CPU op): a layer, the output rows asked for, and a band of input rows that holds them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <utility>

#include "csrc/conv2d_rows/conv2d_rows_logic.h"

namespace neuroflux::test {

struct Case {
  int64_t n, cin, cout, h, w, k, s, p, d, groups, r0, r1, extra_top, extra_bottom;
};

inline int64_t pick(std::mt19937& rng, int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}

/// A layer of awkward sizes (stride, dilation, groups, padding up to 3) and output rows [r0, r1)
/// of it, often a single row.
inline Case random_case(std::mt19937& rng) {
  namespace rows = neuroflux::ops::rows;
  for (;;) {
    Case c{};
    c.groups = pick(rng, 1, 2);
    c.n = pick(rng, 1, 2);
    c.cin = c.groups * pick(rng, 1, 3);
    c.cout = c.groups * pick(rng, 1, 3);
    c.h = pick(rng, 1, 14);
    c.w = pick(rng, 1, 7);
    c.k = pick(rng, 1, 5);
    c.s = pick(rng, 1, 3);
    c.p = pick(rng, 0, 3);
    c.d = pick(rng, 1, 2);
    const rows::Window hw{c.k, c.s, c.p, c.d};
    const int64_t out_h = rows::output_size(hw, c.h);
    const int64_t out_w = rows::output_size(hw, c.w);
    if (out_h < 1 || out_w < 1) continue;
    c.r0 = pick(rng, 0, out_h - 1);
    c.r1 = pick(rng, 0, 2) == 0 ? c.r0 + 1 : pick(rng, c.r0 + 1, out_h);  // one-row bands often
    c.extra_top = pick(rng, 0, 2);
    c.extra_bottom = pick(rng, 0, 2);
    return c;
  }
}

/// The band [b0, b1): the rows the output rows read plus a few extra rows where the map has them
/// (a band may be taller than a call needs).
inline std::pair<int64_t, int64_t> band_rows(const Case& c) {
  namespace rows = neuroflux::ops::rows;
  const rows::Span need =
      rows::input_rows(rows::Window{c.k, c.s, c.p, c.d}, rows::Span{c.r0, c.r1}, c.h);
  if (need.empty()) {  // a window wholly in padding
    const int64_t at = std::min<int64_t>(c.h, c.r0);
    return {at, at};
  }
  return {std::max<int64_t>(0, need.begin - c.extra_top),
          std::min<int64_t>(c.h, need.end + c.extra_bottom)};
}

}  // namespace neuroflux::test
