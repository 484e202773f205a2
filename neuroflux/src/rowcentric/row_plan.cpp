#include "rowcentric/row_plan.h"

#include <c10/util/Exception.h>

#include <algorithm>

namespace neuroflux::rowcentric::rowplan {

StackShape shape_of(const std::vector<RowLayer>& layers, int64_t channels, int64_t height,
                    int64_t width) {
  StackShape s;
  s.channels.push_back(channels);
  s.heights.push_back(height);
  s.widths.push_back(width);
  for (const RowLayer& l : layers) {
    const bool relu = l.kind == RowLayer::Kind::kReLU;
    const rows::Window hw = relu ? rows::Window{}
                                 : rows::Window{l.kernel[0], l.stride[0], l.padding[0],
                                                l.dilation[0]};
    const rows::Window ww = relu ? rows::Window{}
                                 : rows::Window{l.kernel[1], l.stride[1], l.padding[1],
                                                l.dilation[1]};
    const int64_t h = rows::output_size(hw, s.heights.back(), l.ceil_mode);
    const int64_t w = rows::output_size(ww, s.widths.back(), l.ceil_mode);
    TORCH_CHECK(h >= 1 && w >= 1, "row-centric stack: layer ", l.name, " gives an empty map on a ",
                s.heights.back(), "x", s.widths.back(), " input");
    s.channels.push_back(l.kind == RowLayer::Kind::kConv ? l.weight.size(0) : s.channels.back());
    s.heights.push_back(h);
    s.widths.push_back(w);
    s.windows.push_back(hw);
    s.ceil_mode.push_back(l.ceil_mode);
  }
  return s;
}

std::vector<Band> plan_bands(const StackShape& shape, int64_t stripes, RowScheme scheme) {
  const int64_t n = shape.layers();
  const int64_t rows_out = shape.heights.back();
  const int64_t count = std::clamp<int64_t>(stripes, 1, rows_out);
  std::vector<Band> bands(count);
  // Two-phase: the rows of every layer that the bands so far have computed, [0, done[L]).
  std::vector<int64_t> done(n, 0);
  for (int64_t b = 0; b < count; ++b) {
    Band& band = bands[b];
    band.out.resize(n);
    band.in.resize(n);
    band.halo.resize(n);
    const rows::Span last{rows_out * b / count, rows_out * (b + 1) / count};
    if (scheme == RowScheme::kOverlap) {
      rows::Span out = last;
      for (int64_t L = n - 1; L >= 0; --L) {
        band.out[L] = out;
        band.in[L] = rows::input_rows(shape.windows[L], out, shape.heights[L]);
        out = band.in[L];
      }
      continue;
    }
    // Two-phase: layer L computes its rows from done[L] up to what the rows of all bands so far
    // need, so each row is computed once, by the first band that needs it.
    int64_t end = last.end;
    for (int64_t L = n - 1; L >= 0; --L) {
      band.out[L] = rows::Span{done[L], std::max(done[L], end)};
      end = rows::input_rows(shape.windows[L], rows::Span{0, end}, shape.heights[L]).end;
    }
    for (int64_t L = 0; L < n; ++L) {
      band.in[L] = rows::input_rows(shape.windows[L], band.out[L], shape.heights[L]);
      if (L > 0 && !band.in[L].empty() && band.in[L].begin < band.out[L - 1].begin) {
        band.halo[L] = rows::Span{band.in[L].begin, band.out[L - 1].begin};
      }
      done[L] = band.out[L].end;
    }
  }
  return bands;
}

int64_t widest_band_elements(const StackShape& shape, const std::vector<Band>& bands) {
  int64_t widest = 0;
  for (const Band& band : bands) {
    int64_t elements = 0;
    for (int64_t L = 0; L < shape.layers(); ++L) {
      const int64_t rows = band.out[L].size() + band.halo[L].size();
      elements += rows * shape.channels[L + 1] * shape.widths[L + 1];
    }
    widest = std::max(widest, elements);
  }
  return widest;
}

}  // namespace neuroflux::rowcentric::rowplan
