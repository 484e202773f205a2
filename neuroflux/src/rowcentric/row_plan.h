// The band plan of a row-centric stack: for every band and layer, which output rows the layer
// computes and which input rows it reads, for either scheme. Pure row arithmetic on the layer
// shapes (csrc/conv2d_rows/conv2d_rows_logic.h), shared by the executor's forward and backward so
// both walk exactly the same bands.
#pragma once

#include <cstdint>
#include <vector>

#include "csrc/conv2d_rows/conv2d_rows_logic.h"
#include "neuroflux/rowcentric/row_centric.h"

namespace neuroflux::rowcentric {
// The row arithmetic is the operator's (written once for host and device); the executor plans
// its bands with the same functions the kernels use.
namespace rows = ops::rows;
}  // namespace neuroflux::rowcentric

namespace neuroflux::rowcentric::rowplan {

/// Per-sample map shapes through the stack: layer L reads (channels[L], heights[L], widths[L])
/// and writes index L + 1.
struct StackShape {
  std::vector<int64_t> channels, heights, widths;
  std::vector<rows::Window> windows;  ///< each layer's H window
  std::vector<bool> ceil_mode;
  int64_t layers() const { return static_cast<int64_t>(windows.size()); }
};

/// Shapes of `layers` on input (C, H, W) (batch dimension excluded); errors name the layer whose
/// output would be empty.
StackShape shape_of(const std::vector<RowLayer>& layers, int64_t channels, int64_t height,
                    int64_t width);

struct Band {
  std::vector<rows::Span> out;   ///< rows of layer L's output computed in this band
  std::vector<rows::Span> in;    ///< rows of layer L's input it reads (empty when out is)
  /// Two-phase: rows of layer L's input (L >= 1) that earlier bands computed and this band
  /// reads, [in.begin, out[L - 1].begin); always empty for overlap and for L = 0.
  std::vector<rows::Span> halo;
};

/// Bands of the stack's output rows, `stripes` (clamped to [1, output rows]) of near-equal size.
std::vector<Band> plan_bands(const StackShape& shape, int64_t stripes, RowScheme scheme);

/// Bytes of the widest band's maps, all layers summed, per sample and element.
int64_t widest_band_elements(const StackShape& shape, const std::vector<Band>& bands);

}  // namespace neuroflux::rowcentric::rowplan
