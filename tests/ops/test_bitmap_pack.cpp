// bitmap_pack / bitmap_unpack: exact round trips, the mask layout, bad input, and the dispatcher
// registrations.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "neuroflux/ops/bitmap.h"
#include "ops/bitmap_test_util.h"

namespace ops = neuroflux::ops;
using Catch::Matchers::Contains;
using neuroflux::test::bits_equal;
using neuroflux::test::expected_mask;
using neuroflux::test::random_sparse;

namespace {

// Awkward shapes: empty, one element, a 0-dim scalar, sizes around a word, more than one CPU
// chunk (65536 elements) with a partial last word.
const std::vector<std::vector<int64_t>> kCpuShapes{
    {0}, {3, 0, 5}, {1}, {}, {31}, {32}, {33}, {7, 13, 5}, {2, 3, 64}, {3, 70001}, {4, 1, 32769}};

void check_round_trip(const at::Tensor& x) {
  auto [mask, values] = ops::bitmap_pack(x);
  const int64_t n = x.numel();
  INFO("sizes " << x.sizes() << " dtype " << x.scalar_type());
  REQUIRE(mask.scalar_type() == at::kInt);
  REQUIRE(mask.dim() == 1);
  REQUIRE(mask.numel() == (n + 31) / 32);
  REQUIRE(values.scalar_type() == x.scalar_type());
  REQUIRE(values.dim() == 1);
  // Layout: bit i of word w <=> element 32w + i non-zero; values in element order.
  REQUIRE(torch::equal(mask, expected_mask(x)));
  const at::Tensor flat = x.contiguous().reshape({-1});
  const at::Tensor nonzero = neuroflux::test::bit_view(flat) != 0;
  REQUIRE(bits_equal(values, flat.masked_select(nonzero)));
  REQUIRE(ops::bitmap_packed_bytes(mask, values) == 4 * mask.numel() + values.nbytes());

  const at::Tensor back = ops::bitmap_unpack(mask, values, x.sizes());
  REQUIRE(back.sizes() == x.sizes());
  REQUIRE(back.is_contiguous());
  REQUIRE(bits_equal(back, x));
}

}  // namespace

TEST_CASE("bitmap round trip is exact for every dtype and awkward shapes", "[ops][unit]") {
  for (const auto dtype : neuroflux::test::kBitmapDtypes) {
    for (const auto& shape : kCpuShapes) {
      // (No SECTIONs in loops: Catch2 would run each only for the first iteration.)
      check_round_trip(random_sparse(shape, 0.5, dtype, 1));                   // about half zeros
      check_round_trip(torch::zeros(shape, torch::dtype(dtype)));              // all zeros
      check_round_trip(torch::rand(shape, torch::dtype(torch::kFloat)).add(0.5).to(dtype));  // none
      check_round_trip(random_sparse(shape, 0.95, dtype, 2));                  // high sparsity
    }
  }
}

TEST_CASE("bitmap pack of a non-contiguous tensor packs it in row-major order", "[ops][unit]") {
  for (const auto dtype : neuroflux::test::kBitmapDtypes) {
    const at::Tensor base = random_sparse({37, 45}, 0.5, dtype, 3);
    check_round_trip(base.t());                 // transposed
    check_round_trip(base.slice(1, 1, 44, 2));  // strided
    check_round_trip(base.reshape({3, 5, 111}).permute({2, 0, 1}));
    check_round_trip(
        random_sparse({2, 8, 5, 7}, 0.5, dtype, 4).contiguous(at::MemoryFormat::ChannelsLast));
  }
}

TEST_CASE("bitmap pack keeps -0.0 and NaN, so the round trip is bit-exact", "[ops][unit]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const at::Tensor x = torch::tensor({0.0f, -0.0f, 1.0f, nan, -nan, 0.0f, -2.5f});
  for (const auto dtype : neuroflux::test::kBitmapDtypes) {
    const at::Tensor xd = x.to(dtype);
    auto [mask, values] = ops::bitmap_pack(xd);
    REQUIRE(mask.item<int32_t>() == 0b1011110);  // elements 1, 2, 3, 4, 6
    REQUIRE(values.numel() == 5);
    check_round_trip(xd);
  }
}

TEST_CASE("bitmap mask uses all 32 bits of a word, the top one included", "[ops][unit]") {
  at::Tensor x = torch::zeros({64});
  x[31] = 1.0f;  // bit 31 of word 0: the int32 word is negative
  x[32] = 2.0f;  // bit 0 of word 1
  auto [mask, values] = ops::bitmap_pack(x);
  REQUIRE(static_cast<uint32_t>(mask[0].item<int32_t>()) == 0x80000000u);
  REQUIRE(mask[1].item<int32_t>() == 1);
  REQUIRE(torch::equal(values, torch::tensor({1.0f, 2.0f})));
}

TEST_CASE("bitmap packed size is mask words plus exactly the non-zeros", "[ops][unit]") {
  const int64_t n = 1 << 16;
  for (const double s : {0.3, 0.5, 0.7, 0.9}) {
    const at::Tensor x = random_sparse({n}, s, at::kFloat, 5);
    auto [mask, values] = ops::bitmap_pack(x);
    const int64_t nnz = x.count_nonzero().item<int64_t>();
    REQUIRE(values.numel() == nnz);
    const double ratio = static_cast<double>(ops::bitmap_packed_bytes(mask, values)) / x.nbytes();
    const double expected = 1.0 / 32 + static_cast<double>(nnz) / n;
    REQUIRE(ratio == Approx(expected).epsilon(1e-12));
    REQUIRE(ratio == Approx(1.0 / 32 + (1.0 - s)).margin(0.02));
  }
}

TEST_CASE("bitmap pack/unpack reject bad input with clear messages", "[ops][unit]") {
  const at::Tensor x = random_sparse({10, 10}, 0.5, at::kFloat, 6);
  auto [mask, values] = ops::bitmap_pack(x);

  SECTION("integer dtype") {
    REQUIRE_THROWS_WITH(ops::bitmap_pack(torch::ones({4}, torch::kInt)),
                        Contains("bitmap_pack") &&
                            Contains("must be float32, float64, float16 or bfloat16, got Int"));
    REQUIRE_THROWS_WITH(ops::bitmap_pack(torch::ones({4}, torch::kBool)), Contains("got Bool"));
    REQUIRE_THROWS_WITH(
        ops::bitmap_unpack(mask, torch::ones({values.numel()}, torch::kLong), x.sizes()),
        Contains("values must be float32"));
  }
  SECTION("values and mask disagree in length") {
    REQUIRE_THROWS_WITH(
        ops::bitmap_unpack(mask, values.slice(0, 1), x.sizes()),
        Contains("set bits but values has " + std::to_string(values.numel() - 1) + " elements"));
    REQUIRE_THROWS_WITH(
        ops::bitmap_unpack(mask, torch::cat({values, values.slice(0, 0, 1)}), x.sizes()),
        Contains("set bits but values has"));
  }
  SECTION("sizes whose element count disagrees with the mask") {
    REQUIRE_THROWS_WITH(ops::bitmap_unpack(mask, values, {10, 100}),
                        Contains("hold 1000 elements, which take 32 mask words, but mask has 4"));
    REQUIRE_THROWS_WITH(ops::bitmap_unpack(mask, values, {10, -10}), Contains("negative"));
  }
  SECTION("sizes whose product overflows") {
    // Found by tests/fuzz/fuzz_bitmap_args.cpp: the product was taken in int64 unchecked
    // (undefined on overflow); 2^32 x 2^32 wrapped to 0 elements, so an empty mask passed and
    // ATen's own error came out of at::empty.
    const at::Tensor no_mask = torch::empty({0}, torch::kInt);
    const at::Tensor no_values = torch::empty({0});
    const int64_t big = int64_t{1} << 32;
    REQUIRE_THROWS_WITH(ops::bitmap_unpack(no_mask, no_values, {big, big}),
                        Contains("bitmap_unpack: sizes [4294967296, 4294967296] are too large"));
    REQUIRE_THROWS_WITH(ops::bitmap_unpack(no_mask, no_values, {big, big, 0}),
                        Contains("are too large"));
    // A zero first keeps the product at 0, as ATen has it: an empty tensor of those sizes.
    CHECK(ops::bitmap_unpack(no_mask, no_values, {0, big, big}).sizes() ==
          at::IntArrayRef({0, big, big}));
  }
  SECTION("sizes in the same word count but fewer elements than the mask's bits") {
    // 100 elements = 4 words; 97 elements is also 4 words, but bits 97..99 may be set.
    at::Tensor full = torch::ones({100});
    auto [m, v] = ops::bitmap_pack(full);
    REQUIRE_THROWS_WITH(ops::bitmap_unpack(m, v, {97}), Contains("bits set past element 96"));
  }
  SECTION("mask of the wrong dtype or shape") {
    REQUIRE_THROWS_WITH(ops::bitmap_unpack(mask.to(torch::kLong), values, x.sizes()),
                        Contains("mask must be a 1-D int32 tensor"));
    REQUIRE_THROWS_WITH(ops::bitmap_unpack(mask.reshape({2, 2}), values, x.sizes()),
                        Contains("mask must be a 1-D int32 tensor"));
    REQUIRE_THROWS_WITH(ops::bitmap_unpack(mask, values.reshape({1, -1}), x.sizes()),
                        Contains("values must be a 1-D tensor"));
  }
}

TEST_CASE("bitmap operators are found through the dispatcher", "[ops][unit]") {
  // Catches a linker that dropped the static registrations (torchvision issue #3593).
  auto& dispatcher = c10::Dispatcher::singleton();
  for (const char* name : {"neuroflux::bitmap_pack", "neuroflux::bitmap_unpack",
                           "neuroflux::_bitmap_relu_forward", "neuroflux::_bitmap_relu_backward"}) {
    INFO(name);
    const auto op = dispatcher.findSchema({name, ""});
    REQUIRE(op.has_value());
    REQUIRE(op->hasKernelForDispatchKey(c10::DispatchKey::CPU));
  }
  for (const char* name :
       {"neuroflux::bitmap_relu", "neuroflux::packed_conv2d", "neuroflux::packed_max_pool2d"}) {
    INFO(name);
    const auto op = dispatcher.findSchema({name, ""});
    REQUIRE(op.has_value());
    REQUIRE(op->hasKernelForDispatchKey(c10::DispatchKey::Autograd));
    REQUIRE(op->hasKernelForDispatchKey(c10::DispatchKey::CompositeExplicitAutograd));
  }
  // Called the way torch.ops.neuroflux.bitmap_pack would be: by name, through a typed handle.
  const auto pack = dispatcher.findSchemaOrThrow("neuroflux::bitmap_pack", "")
                        .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&)>();
  auto [mask, values] = pack.call(torch::tensor({0.0f, 3.0f}));
  REQUIRE(mask.item<int32_t>() == 2);
  REQUIRE(values.item<float>() == 3.0f);
}
