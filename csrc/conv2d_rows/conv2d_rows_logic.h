// Row arithmetic of row-centric execution, written once for the host (the CPU op, the executor's
// band planner) and the device (cuda/conv2d_rows_kernels.cu). No LibTorch in here: the CUDA
// kernels include this header and compile standalone with nvcc.
//
// Only the height axis is cut into bands, so everything here is about rows. A sliding-window
// layer (conv or pool) along H is described by its kernel k, stride s, padding p and dilation d:
// output row r reads input rows r*s - p + t*d for taps t = 0 .. k-1. Rows outside [0, H) are the
// map's padding and exist only at its true top and bottom edges; a band never sees another
// band's rows as padding.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define NEUROFLUX_ROWS_HOST_DEVICE __host__ __device__
#else
#define NEUROFLUX_ROWS_HOST_DEVICE
#endif

namespace neuroflux::ops::rows {

/// Rows [begin, end) of a map; empty when end <= begin.
struct Span {
  int64_t begin = 0;
  int64_t end = 0;
  NEUROFLUX_ROWS_HOST_DEVICE constexpr int64_t size() const { return end > begin ? end - begin : 0; }
  NEUROFLUX_ROWS_HOST_DEVICE constexpr bool empty() const { return end <= begin; }
};

/// One sliding-window layer along H. ReLU and other per-element layers are the identity
/// window (k = 1, s = 1, p = 0, d = 1).
struct Window {
  int64_t kernel = 1;
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t dilation = 1;
  NEUROFLUX_ROWS_HOST_DEVICE constexpr int64_t extent() const { return dilation * (kernel - 1) + 1; }
};

NEUROFLUX_ROWS_HOST_DEVICE constexpr int64_t floor_div(int64_t a, int64_t b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}
NEUROFLUX_ROWS_HOST_DEVICE constexpr int64_t ceil_div(int64_t a, int64_t b) {
  return -floor_div(-a, b);
}

/// Output rows of a window layer on `height` input rows (ATen's rule, ceil_mode for pools: the
/// last window must start inside the input or its top padding).
NEUROFLUX_ROWS_HOST_DEVICE inline int64_t output_size(const Window& w, int64_t height,
                                                     bool ceil_mode = false) {
  const int64_t span = height + 2 * w.padding - w.extent();
  if (span < 0) return 0;
  int64_t out = (ceil_mode ? ceil_div(span, w.stride) : span / w.stride) + 1;
  if (ceil_mode && (out - 1) * w.stride >= height + w.padding) --out;
  return out;
}

/// Input rows output rows `out` read, padding included: may reach below 0 or past height - 1.
NEUROFLUX_ROWS_HOST_DEVICE inline Span raw_input_rows(const Window& w, Span out) {
  if (out.empty()) return Span{0, 0};
  return Span{out.begin * w.stride - w.padding, (out.end - 1) * w.stride - w.padding + w.extent()};
}

/// The real input rows output rows `out` read: raw_input_rows clipped to [0, height).
NEUROFLUX_ROWS_HOST_DEVICE inline Span input_rows(const Window& w, Span out, int64_t height) {
  if (out.empty()) return Span{0, 0};
  const Span raw = raw_input_rows(w, out);
  return Span{raw.begin < 0 ? 0 : raw.begin, raw.end > height ? height : raw.end};
}

/// Input row read by output row `r` at tap `t` (may be padding: < 0 or >= height).
NEUROFLUX_ROWS_HOST_DEVICE inline int64_t input_row_of(const Window& w, int64_t r, int64_t t) {
  return r * w.stride - w.padding + t * w.dilation;
}

/// The output row that reads input row `i` at tap `t`, or -1 when no output row does (the
/// stride skips it). Used by the input-gradient kernel, which gathers per input element.
NEUROFLUX_ROWS_HOST_DEVICE inline int64_t output_row_of(const Window& w, int64_t i, int64_t t) {
  const int64_t num = i + w.padding - t * w.dilation;
  if (num < 0 || num % w.stride != 0) return -1;
  return num / w.stride;
}

/// How the CPU op runs output rows [r0, r1) through ATen's convolution without a padded copy of
/// the band: convolve the input rows `in` (a view of the band) with symmetric H padding
/// `padding` and keep ATen's output rows [first, first + r1 - r0). ATen pads both ends alike, so
///   - an interior band (no true edge in reach) uses padding 0 and the exact rows: no waste;
///   - a band that reaches the top edge starts at row 0 with the layer's own padding p, which
///     lines ATen's rows up with the map's; the virtual rows ATen adds at the band's bottom are
///     read only by output rows past r1, which are dropped;
///   - a band that reaches only the bottom edge uses padding P = ceil(p / s) * s, a multiple of
///     the stride, so that ATen's row P / s is the band's first row; the P virtual rows on top are
///     read only by the dropped rows before it, and at the bottom only rows up to p are read by
///     kept rows.
/// At most ceil(p / s) extra output rows are computed, and only in the bands at the edges.
struct AtenSlice {
  Span in;          ///< input rows handed to ATen (map coordinates)
  int64_t padding;  ///< ATen's symmetric H padding
  int64_t first;    ///< ATen output row that is output row r0
  int64_t rows;     ///< output rows ATen computes
};

NEUROFLUX_ROWS_HOST_DEVICE inline AtenSlice aten_slice(const Window& w, Span out, int64_t height) {
  const Span raw = raw_input_rows(w, out);
  const Span real = input_rows(w, out, height);
  AtenSlice s{real, 0, 0, 0};
  if (raw.begin < 0) {  // reaches the top edge: whole top, the layer's own padding
    s.in.begin = 0;
    s.padding = w.padding;
    s.first = out.begin;
  } else if (raw.end > height) {  // reaches only the bottom edge
    s.padding = ceil_div(w.padding, w.stride) * w.stride;
    s.first = s.padding / w.stride;
  }
  s.rows = output_size(Window{w.kernel, w.stride, s.padding, w.dilation}, s.in.size());
  return s;
}

}  // namespace neuroflux::ops::rows
