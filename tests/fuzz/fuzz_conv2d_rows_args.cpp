// conv2d_rows' argument checks on malformed calls: band, weight, bias and grad of any dtype, rank
// and layout (zero-element tensors with huge dims included), stride / padding / dilation lists of
// any length and arbitrary int64 groups, band row, map height and output rows. Input
// (tensor_input.h): an op byte (0 forward, 1 the out= form, 2 backward), the band, the weight, a
// bias flag byte and the bias, the three lists, the five integers, then for out= the out tensor or
// for backward grad_output and an output-mask byte. Intended errors: the ops' own checks
// (op_errors.h). Promise for a forward that is accepted: its rows equal at::conv2d's on the whole
// map (the band placed at its rows, zeros elsewhere), where that map is small enough to build.
#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "csrc/conv2d_rows/conv2d_rows.h"
#include "fuzz_support.h"
#include "op_errors.h"
#include "tensor_input.h"

namespace {

namespace ops = neuroflux::ops;
using neuroflux::fuzz::Elements;

struct Call {
  at::Tensor input, weight, bias;
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups, input_row0, input_height, r0, r1;
};

// Small integers most of the time, so valid calls are common; any int64 otherwise.
int64_t integer(neuroflux::fuzz::TensorInput& in) {
  const uint8_t kind = in.byte();
  return (kind & 0x80) != 0 ? in.int64() : static_cast<int64_t>(kind) - 8;
}

Call read_call(neuroflux::fuzz::TensorInput& in) {
  Call c;
  c.input = in.tensor(Elements::kSmallValues);
  c.weight = in.tensor(Elements::kSmallValues);
  if ((in.byte() & 1) != 0) c.bias = in.tensor(Elements::kSmallValues);
  c.stride = in.int64_list(3);
  c.padding = in.int64_list(3);
  c.dilation = in.int64_list(3);
  c.groups = integer(in);
  c.input_row0 = integer(in);
  c.input_height = integer(in);
  c.r0 = integer(in);
  c.r1 = integer(in);
  return c;
}

// Elements of the output a forward call asks for, when its arguments look valid (in double: they
// may be huge). Calls asking for more than kMaxOutput are skipped: a valid call for a 2^31-wide
// padded map is the caller's request for 70 GB, not a finding.
constexpr double kMaxOutput = 1 << 24;
double output_elements(const Call& c) {
  if (c.input.dim() != 4 || c.weight.dim() != 4 || c.stride.size() != 2 ||
      c.padding.size() != 2 || c.dilation.size() != 2 || c.stride[1] < 1)
    return 0;
  const double extent = static_cast<double>(c.dilation[1]) * (c.weight.size(3) - 1) + 1;
  const double width = (static_cast<double>(c.input.size(3)) + 2.0 * c.padding[1] - extent) /
                           static_cast<double>(c.stride[1]) + 1;
  return static_cast<double>(c.input.size(0)) * static_cast<double>(c.weight.size(0)) *
         (static_cast<double>(c.r1) - static_cast<double>(c.r0)) * width;
}

// Multiply-adds per output element (the weight's in-channels x kernel), for the same reason: a
// valid call with a 2^24-element output and a 16x16x16 kernel is 2^36 of them. Both the op and
// the whole-map reference are bounded by kMaxWork (a reference im2col of 43 s under ASan was the
// slowest input of a 10^6-run campaign before this bound).
constexpr double kMaxWork = 1 << 26;
double kernel_elements(const Call& c) {
  if (c.weight.dim() != 4) return 0;
  return static_cast<double>(c.weight.size(1)) * static_cast<double>(c.weight.size(2)) *
         static_cast<double>(c.weight.size(3));
}

at::Tensor forward(const Call& c) {
  return ops::conv2d_rows(c.input, c.weight, c.bias, c.stride, c.padding, c.dilation, c.groups,
                          c.input_row0, c.input_height, c.r0, c.r1);
}

// The reference: at::conv2d on the whole map, rows [r0, r1). float32 and float64 only: half
// precision sums in another order differ by more than a tolerance that would still mean much.
void check_against_conv2d(const Call& c, const at::Tensor& y) {
  const auto dtype = c.input.scalar_type();
  if (c.r0 == c.r1 || c.input.numel() == 0 || c.weight.numel() == 0 || c.input_height > 4096 ||
      (dtype != at::kFloat && dtype != at::kDouble))
    return;
  // Every size is below 17 here (tensor_input.h): no overflow.
  if (c.input.size(0) * c.input.size(1) * c.input_height * c.input.size(3) > (1 << 16)) return;
  // The reference computes every output row: not where the padding makes them billions.
  const double extent = static_cast<double>(c.dilation[0]) * (c.weight.size(2) - 1) + 1;
  const double rows = (static_cast<double>(c.input_height) + 2.0 * c.padding[0] - extent) /
                      static_cast<double>(c.stride[0]) + 1;
  const double whole_map = rows * output_elements(c) / (static_cast<double>(c.r1) - c.r0);
  if (whole_map > kMaxOutput || whole_map * kernel_elements(c) > kMaxWork) return;
  at::Tensor map = at::zeros({c.input.size(0), c.input.size(1), c.input_height, c.input.size(3)},
                             c.input.options());
  map.narrow(2, c.input_row0, c.input.size(2)).copy_(c.input);
  const at::Tensor ref = at::conv2d(map, c.weight, c.bias, c.stride, c.padding, c.dilation,
                                    c.groups)
                             .narrow(2, c.r0, c.r1 - c.r0);
  const double tol = dtype == at::kDouble ? 1e-9 : 1e-3;
  NF_FUZZ_REQUIRE(ref.sizes() == y.sizes() && at::allclose(ref, y, tol, tol),
                  "conv2d_rows equals at::conv2d's rows");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  neuroflux::fuzz::TensorInput in(data, size);
  const uint8_t op = in.byte() % 3;
  const Call c = read_call(in);
  if (op != 2 && (output_elements(c) > kMaxOutput ||
                  output_elements(c) * kernel_elements(c) > kMaxWork))
    return 0;
  if (op == 0) {
    neuroflux::fuzz::expect_op_errors({"conv2d_rows"}, [&] {
      const at::Tensor y = forward(c);
      check_against_conv2d(c, y);
    });
  } else if (op == 1) {
    at::Tensor out = in.tensor(Elements::kSmallValues);
    neuroflux::fuzz::expect_op_errors({"conv2d_rows"}, [&] {
      ops::conv2d_rows_out(c.input, c.weight, c.bias, c.stride, c.padding, c.dilation, c.groups,
                           c.input_row0, c.input_height, c.r0, c.r1, out);
    });
  } else {
    const at::Tensor grad = in.tensor(Elements::kSmallValues);
    const uint8_t mask = in.byte();
    neuroflux::fuzz::expect_op_errors({"_conv2d_rows_backward"}, [&] {
      const auto [gi, gw, gb] = ops::_conv2d_rows_backward(
          grad, c.input, c.weight, c.stride, c.padding, c.dilation, c.groups, c.input_row0,
          c.input_height, c.r0, c.r1, {(mask & 1) != 0, (mask & 2) != 0, (mask & 4) != 0});
      NF_FUZZ_REQUIRE(!gi.defined() || gi.sizes() == c.input.sizes(), "grad_input is the band's");
      NF_FUZZ_REQUIRE(!gw.defined() || gw.sizes() == c.weight.sizes(), "grad_weight");
    });
  }
  return 0;
}
