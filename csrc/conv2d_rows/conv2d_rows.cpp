// Schemas of the conv2d_rows operators and their C++ entry points, which call through the
// dispatcher (so a C++ caller gets what torch.ops.neuroflux.* gets: the CPU or CUDA kernel behind
// the autograd wrapper). Kernels: cpu/, cuda/; autograd: autograd/.
#include "csrc/conv2d_rows/conv2d_rows.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include "csrc/find_op.h"

// TORCH_LIBRARY(neuroflux, m) may appear only once in the library and the bitmap family shares
// the namespace, so each family declares its schemas in a fragment (see csrc/bitmap/bitmap.cpp).
TORCH_LIBRARY_FRAGMENT(neuroflux, m) {
  m.def(
      "conv2d_rows(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[2] padding, "
      "int[2] dilation, int groups, int input_row0, int input_height, int r0, int r1) -> Tensor");
  m.def(
      "conv2d_rows.out(Tensor input, Tensor weight, Tensor? bias, int[2] stride, "
      "int[2] padding, int[2] dilation, int groups, int input_row0, int input_height, int r0, "
      "int r1, *, Tensor(a!) out) -> Tensor(a!)");
  m.def(
      "_conv2d_rows_backward(Tensor grad_output, Tensor input, Tensor weight, int[2] stride, "
      "int[2] padding, int[2] dilation, int groups, int input_row0, int input_height, int r0, "
      "int r1, bool[3] output_mask) -> (Tensor, Tensor, Tensor)");
}

namespace neuroflux::ops {

using detail::find_op;

namespace {

c10::optional<at::Tensor> optional_of(const at::Tensor& t) {
  return t.defined() ? c10::optional<at::Tensor>(t) : c10::nullopt;
}

}  // namespace

at::Tensor conv2d_rows(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                       at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                       int64_t groups, int64_t input_row0, int64_t input_height, int64_t r0,
                       int64_t r1) {
  static const auto op =
      find_op<at::Tensor(const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&,
                         at::IntArrayRef, at::IntArrayRef, at::IntArrayRef, int64_t, int64_t,
                         int64_t, int64_t, int64_t)>("neuroflux::conv2d_rows");
  return op.call(input, weight, optional_of(bias), stride, padding, dilation, groups, input_row0,
                 input_height, r0, r1);
}

at::Tensor& conv2d_rows_out(const at::Tensor& input, const at::Tensor& weight,
                            const at::Tensor& bias, at::IntArrayRef stride,
                            at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                            int64_t input_row0, int64_t input_height, int64_t r0, int64_t r1,
                            at::Tensor& out) {
  static const auto op =
      find_op<at::Tensor&(const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&,
                          at::IntArrayRef, at::IntArrayRef, at::IntArrayRef, int64_t, int64_t,
                          int64_t, int64_t, int64_t, at::Tensor&)>("neuroflux::conv2d_rows",
                                                                   "out");
  return op.call(input, weight, optional_of(bias), stride, padding, dilation, groups, input_row0,
                 input_height, r0, r1, out);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> _conv2d_rows_backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
    int64_t input_row0, int64_t input_height, int64_t r0, int64_t r1,
    std::array<bool, 3> output_mask) {
  static const auto op = find_op<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
      const at::Tensor&, const at::Tensor&, const at::Tensor&, at::IntArrayRef, at::IntArrayRef,
      at::IntArrayRef, int64_t, int64_t, int64_t, int64_t, int64_t, std::array<bool, 3>)>(
      "neuroflux::_conv2d_rows_backward");
  return op.call(grad_output, input, weight, stride, padding, dilation, groups, input_row0,
                 input_height, r0, r1, output_mask);
}

namespace detail {

int64_t check_conv2d_rows_args(const char* op, const at::Tensor& input, const at::Tensor& weight,
                               const at::Tensor& bias, at::IntArrayRef stride,
                               at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                               int64_t input_row0, int64_t input_height, int64_t r0, int64_t r1) {
  TORCH_CHECK(input.defined() && weight.defined(), op, ": input and weight must be defined");
  TORCH_CHECK(input.dim() == 4, op, ": input must be a band (N, C, rows, W), got sizes ",
              input.sizes());
  TORCH_CHECK(weight.dim() == 4, op, ": weight must be (Cout, Cin / groups, kH, kW), got sizes ",
              weight.sizes());
  const auto t = input.scalar_type();
  TORCH_CHECK(t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16, op,
              ": input must be float32, float64, float16 or bfloat16, got ", t);
  TORCH_CHECK(weight.scalar_type() == t, op, ": weight is ", weight.scalar_type(),
              " but input is ", t);
  TORCH_CHECK(weight.device() == input.device(), op, ": weight is on ", weight.device(),
              " but input is on ", input.device());
  if (bias.defined()) {
    TORCH_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), op,
                ": bias must have one element per output channel (", weight.size(0),
                "), got sizes ", bias.sizes());
    TORCH_CHECK(bias.scalar_type() == t && bias.device() == input.device(), op,
                ": bias must match input's dtype and device");
  }
  TORCH_CHECK(stride.size() == 2 && padding.size() == 2 && dilation.size() == 2, op,
              ": stride, padding and dilation must have two entries");
  for (int i = 0; i < 2; ++i) {
    TORCH_CHECK(stride[i] >= 1 && dilation[i] >= 1 && padding[i] >= 0, op,
                ": stride and dilation must be >= 1 and padding >= 0, got stride ", stride,
                ", padding ", padding, ", dilation ", dilation);
  }
  // Every row quantity is bounded before the row arithmetic below (rows::output_size and
  // rows::input_rows multiply and add them): no map, kernel or stride comes near 2^31, and below
  // it nothing here overflows int64. Negative ones are refused by the checks that follow.
  constexpr int64_t kMaxRows = int64_t{1} << 31;
  for (const int64_t v : {stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1],
                          weight.size(2), weight.size(3), input.size(2), input.size(3),
                          input_height, input_row0, r0, r1}) {
    TORCH_CHECK(v < kMaxRows, op, ": sizes, stride, padding, dilation and row numbers must be "
                "below 2^31, got ", v, " (band ", input.sizes(), ", weight ", weight.sizes(),
                ", map height ", input_height, ", rows [", r0, ", ", r1, "))");
  }
  // Divided, not multiplied: weight.size(1) * groups may overflow.
  TORCH_CHECK(groups >= 1 && input.size(1) % groups == 0 &&
                  weight.size(1) == input.size(1) / groups && weight.size(0) % groups == 0,
              op, ": input has ", input.size(1), " channels, weight ", weight.sizes(),
              " and groups ", groups, " disagree");
  TORCH_CHECK(input_height >= 1 && input_row0 >= 0 &&
                  input_row0 + input.size(2) <= input_height,
              op, ": the band holds rows [", input_row0, ", ", input_row0 + input.size(2),
              ") of a map of ", input_height, " rows; it must lie inside the map");
  const rows::Window hw = h_window(weight.sizes(), stride, padding, dilation);
  const int64_t out_h = rows::output_size(hw, input_height);
  TORCH_CHECK(0 <= r0 && r0 <= r1 && r1 <= out_h, op, ": output rows [", r0, ", ", r1,
              ") are not inside the output's ", out_h, " rows");
  const rows::Span need = rows::input_rows(hw, rows::Span{r0, r1}, input_height);
  TORCH_CHECK(need.empty() ||
                  (input_row0 <= need.begin && need.end <= input_row0 + input.size(2)),
              op, ": output rows [", r0, ", ", r1, ") read input rows [", need.begin, ", ",
              need.end, "), but the band holds rows [", input_row0, ", ",
              input_row0 + input.size(2), ")");
  const rows::Window ww{weight.size(3), stride[1], padding[1], dilation[1]};
  const int64_t out_w = rows::output_size(ww, input.size(3));
  TORCH_CHECK(out_w >= 1, op, ": the kernel (", weight.size(3), " wide, dilation ", dilation[1],
              ") is wider than the padded input (", input.size(3), " + 2 x ", padding[1], ")");
  return out_w;
}

void check_conv2d_rows_grad(const at::Tensor& grad_output, const at::Tensor& input,
                            at::IntArrayRef expected) {
  TORCH_CHECK(grad_output.defined(), "_conv2d_rows_backward: grad_output is undefined");
  TORCH_CHECK(grad_output.scalar_type() == input.scalar_type() &&
                  grad_output.device() == input.device(),
              "_conv2d_rows_backward: grad_output is ", grad_output.scalar_type(), " on ",
              grad_output.device(), " but input is ", input.scalar_type(), " on ", input.device());
  TORCH_CHECK(grad_output.sizes() == expected, "_conv2d_rows_backward: grad_output has sizes ",
              grad_output.sizes(), ", expected ", expected);
}

}  // namespace detail
}  // namespace neuroflux::ops
