// conv2d_rows against at::conv2d on the full map: forward rows, input / weight / bias gradients
// (float64), bands taller than needed, the out= form, the dispatcher, and bad bands refused.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <random>

#include "csrc/conv2d_rows/conv2d_rows_logic.h"
#include "csrc/conv2d_rows/conv2d_rows.h"
#include "neuroflux/ops/conv2d_rows.h"
#include "ops/conv2d_rows_test_util.h"

namespace ops = neuroflux::ops;
namespace rows = neuroflux::ops::rows;
using Catch::Matchers::Contains;

using neuroflux::test::band_rows;
using neuroflux::test::Case;
using neuroflux::test::random_case;

TEST_CASE("conv2d_rows equals the rows of at::conv2d on the full map, with gradients",
          "[ops][unit]") {
  std::mt19937 rng(1234);
  torch::manual_seed(1234);
  for (int trial = 0; trial < 300; ++trial) {
    const Case c = random_case(rng);
    INFO("trial " << trial << ": n" << c.n << " cin" << c.cin << " cout" << c.cout << " h" << c.h
                  << " w" << c.w << " k" << c.k << " s" << c.s << " p" << c.p << " d" << c.d
                  << " g" << c.groups << " rows [" << c.r0 << ", " << c.r1 << ")");
    const auto f64 = torch::dtype(torch::kDouble);
    const at::Tensor x = torch::randn({c.n, c.cin, c.h, c.w}, f64);
    const at::Tensor weight = torch::randn({c.cout, c.cin / c.groups, c.k, c.k}, f64);
    const at::Tensor bias = torch::randn({c.cout}, f64);
    const std::vector<int64_t> st{c.s, c.s}, pd{c.p, c.p}, dl{c.d, c.d};

    // The reference: full-map conv, its rows [r0, r1), and their gradients for a random g.
    at::Tensor xr = x.clone().requires_grad_(true), wr = weight.clone().requires_grad_(true),
               br = bias.clone().requires_grad_(true);
    const at::Tensor ref = at::conv2d(xr, wr, br, st, pd, dl, c.groups).narrow(2, c.r0, c.r1 - c.r0);
    const at::Tensor g = torch::randn(ref.sizes(), f64);
    ref.backward(g);

    const auto [b0, b1] = band_rows(c);
    at::Tensor band = x.narrow(2, b0, b1 - b0).clone().requires_grad_(true);
    at::Tensor wb = weight.clone().requires_grad_(true), bb = bias.clone().requires_grad_(true);
    const at::Tensor got =
        ops::conv2d_rows(band, wb, bb, st, pd, dl, c.groups, b0, c.h, c.r0, c.r1);
    REQUIRE(got.sizes() == ref.sizes());
    CHECK(torch::allclose(got, ref, 1e-10, 1e-10));
    got.backward(g);
    CHECK(torch::allclose(band.grad(), xr.grad().narrow(2, b0, b1 - b0), 1e-10, 1e-10));
    CHECK(torch::allclose(wb.grad(), wr.grad(), 1e-10, 1e-10));
    CHECK(torch::allclose(bb.grad(), br.grad(), 1e-10, 1e-10));
  }
}

TEST_CASE("conv2d_rows in float32 and without bias stays within float tolerance",
          "[ops][unit]") {
  torch::manual_seed(7);
  const at::Tensor x = torch::randn({2, 3, 17, 9});
  const at::Tensor w = torch::randn({4, 3, 3, 3}, torch::requires_grad());
  const at::Tensor full = at::conv2d(x, w, {}, 1, 1);
  // Every band of 5 rows, top, interior and bottom, each from exactly the rows it reads.
  for (int64_t r0 = 0; r0 < 17; r0 += 5) {
    const int64_t r1 = std::min<int64_t>(17, r0 + 5);
    const int64_t b0 = std::max<int64_t>(0, r0 - 1), b1 = std::min<int64_t>(17, r1 + 1);
    const at::Tensor y = ops::conv2d_rows(x.narrow(2, b0, b1 - b0), w, at::Tensor(), {1, 1},
                                          {1, 1}, {1, 1}, 1, b0, 17, r0, r1);
    CHECK(torch::allclose(y, full.narrow(2, r0, r1 - r0), 1e-5, 1e-5));
  }
}

TEST_CASE("conv2d_rows.out writes into a slice of a preallocated map", "[ops][unit]") {
  torch::manual_seed(3);
  const at::Tensor x = torch::randn({1, 2, 12, 6});
  const at::Tensor w = torch::randn({3, 2, 3, 3});
  const at::Tensor b = torch::randn({3});
  const at::Tensor full = at::conv2d(x, w, b, 2, 1);  // 6 output rows
  at::Tensor out = torch::full({1, 3, 6, 3}, 99.0);
  for (int64_t r0 : {0, 2, 4}) {
    at::Tensor slice = out.narrow(2, r0, 2);
    const rows::Span need = rows::input_rows(rows::Window{3, 2, 1, 1}, rows::Span{r0, r0 + 2}, 12);
    ops::conv2d_rows_out(x.narrow(2, need.begin, need.size()), w, b, {2, 2}, {1, 1}, {1, 1}, 1,
                         need.begin, 12, r0, r0 + 2, slice);
  }
  CHECK(torch::allclose(out, full, 1e-5, 1e-5));
}

TEST_CASE("conv2d_rows is registered with the dispatcher and refuses bad bands",
          "[ops][unit]") {
  for (const char* name : {"neuroflux::conv2d_rows", "neuroflux::_conv2d_rows_backward"}) {
    CHECK(c10::Dispatcher::singleton().findSchema({name, ""}).has_value());
  }
  CHECK(c10::Dispatcher::singleton().findSchema({"neuroflux::conv2d_rows", "out"}).has_value());
  const at::Tensor x = torch::randn({1, 2, 10, 5});
  const at::Tensor w = torch::randn({2, 2, 3, 3});
  // Rows [4, 6) read input rows [3, 7); a band of rows [4, 8) misses row 3.
  CHECK_THROWS_WITH(ops::conv2d_rows(x.narrow(2, 4, 4), w, at::Tensor(), {1, 1}, {1, 1}, {1, 1},
                                     1, 4, 10, 4, 6),
                    Contains("read input rows [3, 7)") && Contains("holds rows [4, 8)"));
  CHECK_THROWS_WITH(ops::conv2d_rows(x, w, at::Tensor(), {1, 1}, {1, 1}, {1, 1}, 1, 0, 10, 3, 11),
                    Contains("not inside the output's 10 rows"));
  CHECK_THROWS_WITH(ops::conv2d_rows(x, w, at::Tensor(), {1, 1}, {1, 1}, {1, 1}, 1, 2, 10, 0, 1),
                    Contains("must lie inside the map"));
}

TEST_CASE("conv2d_rows refuses arguments whose row arithmetic would overflow", "[ops][unit]") {
  // Found by tests/fuzz/fuzz_conv2d_rows_args.cpp under UBSan: padding, stride, dilation, kernel
  // and row numbers went unbounded into rows::output_size (signed overflow, undefined), and
  // weight.size(1) * groups could overflow too.
  const at::Tensor x = torch::randn({1, 2, 10, 5});
  const at::Tensor w = torch::randn({2, 2, 3, 3});
  const int64_t huge = int64_t{1} << 62;
  CHECK_THROWS_WITH(ops::conv2d_rows(x, w, at::Tensor(), {1, 1}, {huge, 1}, {1, 1}, 1, 0, 10, 0, 1),
                    Contains("must be below 2^31"));
  CHECK_THROWS_WITH(ops::conv2d_rows(x, w, at::Tensor(), {1, 1}, {1, 1}, {huge, 1}, 1, 0, 10, 0, 1),
                    Contains("must be below 2^31"));
  CHECK_THROWS_WITH(ops::conv2d_rows(x, w, at::Tensor(), {1, 1}, {1, 1}, {1, 1}, 1, 0, huge, 0, 1),
                    Contains("must be below 2^31"));
  // No channels, and 4 x 2^62 wraps to 0: the product said "agree".
  const at::Tensor no_channels = torch::randn({1, 0, 10, 5});
  const at::Tensor w_empty = torch::randn({0, 4, 3, 3});
  CHECK_THROWS_WITH(ops::conv2d_rows(no_channels, w_empty, at::Tensor(), {1, 1}, {1, 1}, {1, 1},
                                     huge, 0, 10, 0, 1),
                    Contains("and groups 4611686018427387904 disagree"));
}

TEST_CASE("conv2d_rows' backward refuses a grad_output of another dtype or device",
          "[ops][unit]") {
  // Found by tests/fuzz/fuzz_conv2d_rows_args.cpp: only grad_output's sizes were checked, so a
  // uint8 gradient reached ATen (its own error; on CUDA a kernel would read it as float).
  const at::Tensor x = torch::randn({1, 2, 10, 5});
  const at::Tensor w = torch::randn({2, 2, 3, 3});
  const auto backward = [&](const at::Tensor& grad) {
    return ops::_conv2d_rows_backward(grad, x, w, {1, 1}, {1, 1}, {1, 1}, 1, 0, 10, 0, 10,
                                      {true, true, true});
  };
  CHECK_THROWS_WITH(backward(torch::ones({1, 2, 10, 5}, torch::kByte)),
                    Contains("_conv2d_rows_backward: grad_output is Byte on cpu but input is "
                             "Float on cpu"));
  CHECK_THROWS_WITH(backward(torch::ones({1, 2, 9, 5})), Contains("expected [1, 2, 10, 5]"));
  CHECK(std::get<0>(backward(torch::ones({1, 2, 10, 5}))).sizes() == x.sizes());
}
