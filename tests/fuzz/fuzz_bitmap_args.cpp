// The bitmap operators on malformed arguments: x, mask, values and grad of any dtype, rank and
// layout, and arbitrary int64 sizes for unpack. Input (tensor_input.h): an op byte (0 pack,
// 1 unpack, 2 relu, 3 relu backward), then the op's arguments in order. Intended errors: the ops'
// own checks (op_errors.h). Promise for what is accepted: unpack(pack(x)) is x bit for bit;
// unpack gives a tensor of `sizes` that packs back to the same mask and values (when no value is
// itself zero); relu's backward selects by the mask relu returned.
#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>

#include "csrc/bitmap/bitmap.h"
#include "fuzz_support.h"
#include "op_errors.h"
#include "tensor_input.h"

namespace {

namespace ops = neuroflux::ops;
using neuroflux::fuzz::Elements;

at::Tensor bits(const at::Tensor& t) {
  switch (t.element_size()) {
    case 1:
      return t.contiguous().view(at::kChar);
    case 2:
      return t.contiguous().view(at::kShort);
    case 4:
      return t.contiguous().view(at::kInt);
    default:
      return t.contiguous().view(at::kLong);
  }
}

bool bits_equal(const at::Tensor& a, const at::Tensor& b) {
  return a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type() &&
         at::equal(bits(a), bits(b));
}

void pack(neuroflux::fuzz::TensorInput& in) {
  const at::Tensor x = in.tensor(Elements::kRawBits);
  neuroflux::fuzz::expect_op_errors({"bitmap_pack"}, [&] {
    const auto [mask, values] = ops::bitmap_pack(x);
    NF_FUZZ_REQUIRE(mask.numel() == ops::bitmap_mask_words(x.numel()), "one word per 32");
    NF_FUZZ_REQUIRE(bits_equal(ops::bitmap_unpack(mask, values, x.sizes()), x), "round trip");
  });
}

void unpack(neuroflux::fuzz::TensorInput& in) {
  const at::Tensor mask = in.tensor(Elements::kRawBits);
  const at::Tensor values = in.tensor(Elements::kRawBits);
  const std::vector<int64_t> sizes = in.int64_list(5);
  neuroflux::fuzz::expect_op_errors({"bitmap_unpack"}, [&] {
    const at::Tensor out = ops::bitmap_unpack(mask, values, sizes);
    NF_FUZZ_REQUIRE(out.sizes() == at::IntArrayRef(sizes), "the sizes asked for");
    NF_FUZZ_REQUIRE(out.scalar_type() == values.scalar_type(), "values' dtype");
    if (at::equal(bits(values) != 0, at::ones({values.numel()}, at::kBool))) {
      const auto [mask2, values2] = ops::bitmap_pack(out);
      NF_FUZZ_REQUIRE(at::equal(mask2, mask.contiguous()), "packs back to the same mask");
      NF_FUZZ_REQUIRE(bits_equal(values2, values), "and the same values");
    }
  });
}

void relu(neuroflux::fuzz::TensorInput& in) {
  const at::Tensor x = in.tensor(Elements::kRawBits);
  neuroflux::fuzz::expect_op_errors({"bitmap_relu"}, [&] {
    const at::Tensor y = ops::bitmap_relu(x);
    NF_FUZZ_REQUIRE(y.sizes() == x.sizes() && y.scalar_type() == x.scalar_type(), "x's shape");
    const auto [y2, mask] = ops::_bitmap_relu_forward(x);
    NF_FUZZ_REQUIRE(bits_equal(y, y2), "one relu");
    const at::Tensor grad = at::ones_like(y);
    const at::Tensor selected = ops::_bitmap_relu_backward(grad, mask);
    NF_FUZZ_REQUIRE(bits_equal(selected, ops::bitmap_unpack(mask, grad.masked_select(selected != 0),
                                                             x.sizes())),
                    "backward selects by the mask");
  });
}

void relu_backward(neuroflux::fuzz::TensorInput& in) {
  const at::Tensor grad = in.tensor(Elements::kRawBits);
  const at::Tensor mask = in.tensor(Elements::kRawBits);
  neuroflux::fuzz::expect_op_errors({"_bitmap_relu_backward"}, [&] {
    const at::Tensor out = ops::_bitmap_relu_backward(grad, mask);
    NF_FUZZ_REQUIRE(out.sizes() == grad.sizes() && out.scalar_type() == grad.scalar_type(),
                    "grad's shape");
  });
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  neuroflux::fuzz::TensorInput in(data, size);
  switch (in.byte() % 4) {
    case 0:
      pack(in);
      break;
    case 1:
      unpack(in);
      break;
    case 2:
      relu(in);
      break;
    default:
      relu_backward(in);
      break;
  }
  return 0;
}
