// Row-centric execution of conv stacks (after LR-CNN). A band of output rows of a chain of
// Conv2d / ReLU / MaxPool2d / AvgPool2d layers depends only on a slightly taller band of the
// chain's input, so the chain can run band by band, keeping only one band of every intermediate
// map alive instead of the whole map:
//
//   forward   computes the output band by band under no-grad and keeps only the stack's input
//             (plus, for two-phase, the few boundary rows per layer and band);
//   backward  recomputes one band at a time with autograd on, back-propagates that band's slice
//             of the output gradient, sums the weight gradients and adds the band's input
//             gradient into place (overlapping halos summed).
// Outputs and gradients equal the plain stack's up to float rounding (the sums run in another
// order).
//
// Two partitioning schemes:
//   kOverlap   every band recomputes its halo: the rows its receptive field shares with the
//              neighbouring bands, through every layer.
//   kTwoPhase  bands run top to bottom and each layer keeps the boundary rows the next band
//              needs, so no row of any layer is computed twice; forward saves those boundary
//              rows (small: about kernel - stride rows per layer and band) for backward, which
//              runs the bands bottom to top and hands the boundary rows' gradients up.
//
// Batch norm is refused: in training mode it needs statistics over the whole map, which a band
// does not have (a two-pass scheme would cost another full forward); build the model without it.
//
// The operator underneath, conv2d_rows (<neuroflux/ops/conv2d_rows.h>), computes output rows
// [r0, r1) of a convolution from a band of input rows, applying the zero padding only at the
// map's true top and bottom edges.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace neuroflux::rowcentric {

enum class RowScheme { kOverlap, kTwoPhase };

/// "overlap" / "two_phase".
std::string to_string(RowScheme scheme);

struct RowCentricOptions {
  /// Bands of the stack's output rows; 0 = "auto": the fewest bands (largest band) whose
  /// estimated peak fits in free_bytes, decided at every forward call.
  int64_t stripes = 8;
  RowScheme scheme = RowScheme::kOverlap;
  /// Required for stripes = 0, unused otherwise: the bytes the stack may use on `device` (its
  /// input's), typically a budget minus what is live there now. Called at every forward call,
  /// since that changes from call to call; the executor keeps no budget of its own.
  std::function<int64_t(const c10::Device& device)> free_bytes;
};

/// One layer of a stack as the executor sees it. Build with row_layers_of.
struct RowLayer {
  enum class Kind { kConv, kReLU, kMaxPool, kAvgPool } kind;
  at::Tensor weight, bias;               ///< conv only; bias may be undefined
  std::vector<int64_t> kernel{1, 1}, stride{1, 1}, padding{0, 0}, dilation{1, 1};
  int64_t groups = 1;
  bool ceil_mode = false;                ///< pools
  bool count_include_pad = true;         ///< avg pool
  c10::optional<int64_t> divisor_override;  ///< avg pool
  std::string name;                      ///< for messages: "unit3.0" or the module's name
};

/// The layers of `modules` (Conv2d with zero padding, ReLU, MaxPool2d, AvgPool2d), sharing their
/// parameters. Anything else, batch norm included, is refused with an error naming `where` and
/// the layer.
std::vector<RowLayer> row_layers_of(const torch::nn::Sequential& modules, const std::string& where);

/// Appends the layers of `modules` to `layers` (for stacks that span several Sequentials).
void append_row_layers(std::vector<RowLayer>& layers, const torch::nn::Sequential& modules,
                       const std::string& where);

/// True when row_layers_of would accept every child of `modules`.
bool is_row_stack(const torch::nn::Sequential& modules);

/// Runs `layers` on x (N, C, H, W) band by band; the result and its gradients equal the plain
/// stack's. Autograd records one node whose backward recomputes the bands.
at::Tensor row_centric_forward(const at::Tensor& x, const std::vector<RowLayer>& layers,
                               const RowCentricOptions& options);

/// The band count row_centric_forward uses for input `sizes`, `stripes = 0` resolved against
/// `free_bytes` (the budget left); always in [1, output rows]. Throws when no band count fits.
int64_t resolve_stripes(const std::vector<RowLayer>& layers, at::IntArrayRef sizes,
                        const RowCentricOptions& options, int64_t free_bytes);

/// Estimated peak bytes of running `layers` on input `sizes` (of `element_size`-byte elements)
/// in `stripes` bands, forward and backward: the input, output and their gradients plus the
/// widest band's recomputed maps and their gradients.
int64_t row_centric_peak_estimate(const std::vector<RowLayer>& layers, at::IntArrayRef sizes,
                                  int64_t element_size, int64_t stripes);

/// A Sequential of Conv2d / ReLU / MaxPool2d / AvgPool2d run row-centric. The layers are
/// registered as the submodule "layers" (shared, not copied), so parameters and state dicts are
/// the Sequential's. Unsupported layers are refused at construction.
class RowCentricStackImpl : public torch::nn::Module {
 public:
  RowCentricStackImpl(torch::nn::Sequential layers, RowCentricOptions options);
  at::Tensor forward(const at::Tensor& x);
  /// A deep copy: the layers cloned, the options kept.
  std::shared_ptr<torch::nn::Module> clone(
      const c10::optional<c10::Device>& device = c10::nullopt) const override;
  void pretty_print(std::ostream& stream) const override;

  torch::nn::Sequential layers;
  RowCentricOptions options;
};
TORCH_MODULE(RowCentricStack);

}  // namespace neuroflux::rowcentric
