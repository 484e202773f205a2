// Schemas of the bitmap operators and their C++ entry points, which call through the dispatcher
// (so a C++ caller gets exactly what torch.ops.neuroflux.* gets: the CPU or CUDA kernel, behind
// the autograd wrapper where there is one). Kernels: cpu/, cuda/; autograd: autograd/.
#include "csrc/bitmap/bitmap.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include "csrc/bitmap/bitmap_logic.h"
#include "csrc/find_op.h"

// The neuroflux namespace is shared by several operator families (bitmap, conv2d_rows, ...),
// each in its own file; TORCH_LIBRARY(neuroflux, m) may appear only once in a library, so every
// family, this one included, declares its schemas in a TORCH_LIBRARY_FRAGMENT.
TORCH_LIBRARY_FRAGMENT(neuroflux, m) {
  m.def("bitmap_pack(Tensor x) -> (Tensor mask, Tensor values)");
  m.def("bitmap_unpack(Tensor mask, Tensor values, int[] sizes) -> Tensor");
  m.def("bitmap_relu(Tensor x) -> Tensor");
  m.def(
      "packed_conv2d(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[2] padding, "
      "int[2] dilation, int groups) -> Tensor");
  m.def(
      "packed_max_pool2d(Tensor x, int[2] kernel_size, int[2] stride, int[2] padding, "
      "int[2] dilation, bool ceil_mode) -> Tensor");
  m.def("_bitmap_relu_forward(Tensor x) -> (Tensor y, Tensor mask)");
  m.def("_bitmap_relu_backward(Tensor grad_output, Tensor mask) -> Tensor");
}

namespace neuroflux::ops {

using detail::find_op;

std::tuple<at::Tensor, at::Tensor> bitmap_pack(const at::Tensor& x) {
  static const auto op =
      find_op<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&)>("neuroflux::bitmap_pack");
  return op.call(x);
}

at::Tensor bitmap_unpack(const at::Tensor& mask, const at::Tensor& values, at::IntArrayRef sizes) {
  static const auto op = find_op<at::Tensor(const at::Tensor&, const at::Tensor&, at::IntArrayRef)>(
      "neuroflux::bitmap_unpack");
  return op.call(mask, values, sizes);
}

int64_t bitmap_mask_words(int64_t numel) { return bitmap::mask_words(numel); }

int64_t bitmap_packed_bytes(const at::Tensor& mask, const at::Tensor& values) {
  return static_cast<int64_t>(mask.nbytes() + values.nbytes());
}

at::Tensor bitmap_relu(const at::Tensor& x) {
  static const auto op = find_op<at::Tensor(const at::Tensor&)>("neuroflux::bitmap_relu");
  return op.call(x);
}

at::Tensor packed_conv2d(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                         at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                         int64_t groups) {
  static const auto op =
      find_op<at::Tensor(const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&,
                         at::IntArrayRef, at::IntArrayRef, at::IntArrayRef, int64_t)>(
          "neuroflux::packed_conv2d");
  // Unbatched (C, H, W) input, as at::conv2d accepts it: the op itself sees (1, C, H, W).
  const bool unbatched = input.dim() == 3;
  const at::Tensor batched = unbatched ? input.unsqueeze(0) : input;
  const c10::optional<at::Tensor> b =
      bias.defined() ? c10::optional<at::Tensor>(bias) : c10::nullopt;
  at::Tensor out = op.call(batched, weight, b, stride, padding, dilation, groups);
  return unbatched ? out.squeeze(0) : out;
}

at::Tensor packed_max_pool2d(const at::Tensor& x, at::IntArrayRef kernel_size,
                             at::IntArrayRef stride, at::IntArrayRef padding,
                             at::IntArrayRef dilation, bool ceil_mode) {
  static const auto op =
      find_op<at::Tensor(const at::Tensor&, at::IntArrayRef, at::IntArrayRef, at::IntArrayRef,
                         at::IntArrayRef, bool)>("neuroflux::packed_max_pool2d");
  return op.call(x, kernel_size, stride, padding, dilation, ceil_mode);
}

std::tuple<at::Tensor, at::Tensor> _bitmap_relu_forward(const at::Tensor& x) {
  static const auto op = find_op<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&)>(
      "neuroflux::_bitmap_relu_forward");
  return op.call(x);
}

at::Tensor _bitmap_relu_backward(const at::Tensor& grad_output, const at::Tensor& mask) {
  static const auto op =
      find_op<at::Tensor(const at::Tensor&, const at::Tensor&)>("neuroflux::_bitmap_relu_backward");
  return op.call(grad_output, mask);
}

namespace detail {

void check_floating(const at::Tensor& x, const char* op, const char* arg) {
  TORCH_CHECK(x.defined(), op, ": ", arg, " is an undefined tensor");
  const auto t = x.scalar_type();
  TORCH_CHECK(t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16, op, ": ",
              arg, " must be float32, float64, float16 or bfloat16, got ", t);
}

int64_t check_unpack_args(const at::Tensor& mask, const at::Tensor& values, at::IntArrayRef sizes) {
  TORCH_CHECK(mask.defined() && values.defined(), "bitmap_unpack: mask and values must be defined");
  TORCH_CHECK(mask.scalar_type() == at::kInt && mask.dim() == 1,
              "bitmap_unpack: mask must be a 1-D int32 tensor (as bitmap_pack returns it), got a ",
              mask.dim(), "-D ", mask.scalar_type(), " tensor");
  check_floating(values, "bitmap_unpack", "values");
  TORCH_CHECK(values.dim() == 1, "bitmap_unpack: values must be a 1-D tensor, got ", values.dim(),
              "-D with sizes ", values.sizes());
  TORCH_CHECK(mask.device() == values.device(), "bitmap_unpack: mask is on ", mask.device(),
              " but values is on ", values.device());
  // Sizes come from the caller, not from a tensor: their product may overflow (undefined for
  // int64), and mask_words adds 31 to it. Multiplied in order, as ATen does before it allocates:
  // sizes it refuses ([2^40, 2^40, 0]) are refused here, ones it makes ([0, 2^40, 2^40]) are not.
  // No real tensor comes near 2^62 elements.
  constexpr int64_t kMaxElements = int64_t{1} << 62;
  int64_t numel = 1;
  for (const int64_t s : sizes) {
    TORCH_CHECK(s >= 0, "bitmap_unpack: sizes ", sizes, " has a negative dimension");
    TORCH_CHECK(!__builtin_mul_overflow(numel, s, &numel) && numel <= kMaxElements,
                "bitmap_unpack: sizes ", sizes, " are too large (over 2^62 elements)");
  }
  const int64_t words = bitmap::mask_words(numel);
  TORCH_CHECK(mask.numel() == words, "bitmap_unpack: sizes ", sizes, " hold ", numel,
              " elements, which take ", words, " mask words, but mask has ", mask.numel());
  return numel;
}

void check_unpack_counts(int64_t set_bits, bool tail_clear, const at::Tensor& values,
                         int64_t numel) {
  TORCH_CHECK(tail_clear, "bitmap_unpack: mask has bits set past element ", numel - 1,
              " (the unused bits of the last word must be zero); mask and sizes disagree");
  TORCH_CHECK(set_bits == values.numel(), "bitmap_unpack: mask has ", set_bits,
              " set bits but values has ", values.numel(), " elements; they must be equal");
}

void check_relu_mask(const at::Tensor& grad_output, const at::Tensor& mask) {
  check_floating(grad_output, "_bitmap_relu_backward", "grad_output");
  TORCH_CHECK(mask.defined() && mask.scalar_type() == at::kInt && mask.dim() == 1,
              "_bitmap_relu_backward: mask must be a 1-D int32 tensor");
  TORCH_CHECK(mask.device() == grad_output.device(), "_bitmap_relu_backward: mask is on ",
              mask.device(), " but grad_output is on ", grad_output.device());
  TORCH_CHECK(mask.numel() == bitmap::mask_words(grad_output.numel()),
              "_bitmap_relu_backward: grad_output has ", grad_output.numel(),
              " elements, which take ", bitmap::mask_words(grad_output.numel()),
              " mask words, but mask has ", mask.numel());
}

}  // namespace detail
}  // namespace neuroflux::ops
