// The CUDA kernels of conv2d_rows against the CPU op (itself checked against at::conv2d in
// test_conv2d_rows.cpp): forward rows and input / weight / bias gradients on random layers of
// awkward sizes, float64 and float32, contiguous or not, the out= form, and bad calls refused with
// the CPU's words. Without a CUDA device every test here skips itself, and the CTest entry "cuda"
// is reported as skipped; scripts/gpu-check.sh runs them where a GPU exists.
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <random>
#include <utility>
#include <vector>

#include "neuroflux/ops/conv2d_rows.h"
#include "ops/conv2d_rows_test_util.h"
#include "test_skip.h"

namespace ops = neuroflux::ops;
using Catch::Matchers::Contains;
using neuroflux::test::band_rows;
using neuroflux::test::Case;
using neuroflux::test::random_case;

namespace {

struct Grads {
  at::Tensor y, input, weight, bias;
};

// conv2d_rows of `band` on `device` (every other column of it when `strided`: a view, as a band
// of a wider map is) and its gradients for `g`.
Grads run(const Case& c, const at::Tensor& band, bool strided, const at::Tensor& weight,
          const at::Tensor& bias, const at::Tensor& g, int64_t b0, const c10::Device& device) {
  at::Tensor x = band.to(device);
  if (strided) x = x.slice(3, 0, x.size(3), 2);
  x = x.detach().requires_grad_(true);
  at::Tensor w = weight.to(device).detach().requires_grad_(true);
  at::Tensor b = bias.defined() ? bias.to(device).detach().requires_grad_(true) : at::Tensor();
  const std::vector<int64_t> st{c.s, c.s}, pd{c.p, c.p}, dl{c.d, c.d};
  const at::Tensor y = ops::conv2d_rows(x, w, b, st, pd, dl, c.groups, b0, c.h, c.r0, c.r1);
  y.backward(g.to(device));
  return {y.cpu(), x.grad().cpu(), w.grad().cpu(), b.defined() ? b.grad().cpu() : at::Tensor()};
}

}  // namespace

TEST_CASE("conv2d_rows on CUDA equals the CPU op, forward and gradients", "[cuda][unit]") {
  if (!torch::cuda::is_available()) NEUROFLUX_SKIP("no CUDA device");
  std::mt19937 rng(4321);
  torch::manual_seed(4321);
  for (const auto dtype : {at::kDouble, at::kFloat}) {
    // float64 agrees to rounding; float32 sums in another order than ATen's CPU convolution.
    const double tol = dtype == at::kDouble ? 1e-10 : 1e-4;
    for (int trial = 0; trial < 200; ++trial) {
      const Case c = random_case(rng);
      const bool with_bias = trial % 3 != 0;
      const bool strided = trial % 4 == 1;  // a band that is a view of a wider map
      INFO("dtype " << dtype << " trial " << trial << ": n" << c.n << " cin" << c.cin << " cout"
                    << c.cout << " h" << c.h << " w" << c.w << " k" << c.k << " s" << c.s << " p"
                    << c.p << " d" << c.d << " g" << c.groups << " rows [" << c.r0 << ", "
                    << c.r1 << ") bias " << with_bias << " strided " << strided);
      const auto opts = torch::dtype(dtype);
      const auto [b0, b1] = band_rows(c);
      const at::Tensor band = torch::randn({c.n, c.cin, b1 - b0, strided ? 2 * c.w : c.w}, opts);
      const at::Tensor weight = torch::randn({c.cout, c.cin / c.groups, c.k, c.k}, opts);
      const at::Tensor bias = with_bias ? torch::randn({c.cout}, opts) : at::Tensor();
      const int64_t out_w = (c.w + 2 * c.p - c.d * (c.k - 1) - 1) / c.s + 1;
      const at::Tensor g = torch::randn({c.n, c.cout, c.r1 - c.r0, out_w}, opts);

      const Grads cpu = run(c, band, strided, weight, bias, g, b0, torch::kCPU);
      const Grads gpu = run(c, band, strided, weight, bias, g, b0, torch::kCUDA);
      REQUIRE(gpu.y.sizes() == cpu.y.sizes());
      CHECK(torch::allclose(gpu.y, cpu.y, tol, tol));
      CHECK(torch::allclose(gpu.input, cpu.input, tol, tol));
      CHECK(torch::allclose(gpu.weight, cpu.weight, tol, tol));
      if (with_bias) CHECK(torch::allclose(gpu.bias, cpu.bias, tol, tol));
    }
  }
}

TEST_CASE("conv2d_rows.out on CUDA writes into a slice of a preallocated map", "[cuda][unit]") {
  if (!torch::cuda::is_available()) NEUROFLUX_SKIP("no CUDA device");
  torch::manual_seed(3);
  const at::Tensor x = torch::randn({2, 3, 13, 7}, torch::kDouble);
  const at::Tensor w = torch::randn({4, 3, 3, 3}, torch::kDouble);
  const at::Tensor b = torch::randn({4}, torch::kDouble);
  const at::Tensor full = at::conv2d(x, w, b, 2, 1);  // 7 output rows
  at::Tensor out = torch::full({2, 4, 7, 4}, 99.0, torch::dtype(torch::kDouble).device(torch::kCUDA));
  for (const auto& [r0, r1] : std::vector<std::pair<int64_t, int64_t>>{{0, 3}, {3, 5}, {5, 7}}) {
    const int64_t b0 = std::max<int64_t>(0, 2 * r0 - 1), b1 = std::min<int64_t>(13, 2 * r1);
    at::Tensor slice = out.narrow(2, r0, r1 - r0);
    ops::conv2d_rows_out(x.narrow(2, b0, b1 - b0).cuda(), w.cuda(), b.cuda(), {2, 2}, {1, 1},
                         {1, 1}, 1, b0, 13, r0, r1, slice);
  }
  CHECK(torch::allclose(out.cpu(), full, 1e-10, 1e-10));
}

TEST_CASE("conv2d_rows on CUDA refuses bad calls with the CPU's words", "[cuda][unit]") {
  if (!torch::cuda::is_available()) NEUROFLUX_SKIP("no CUDA device");
  const at::Tensor x = torch::randn({1, 2, 10, 5}, torch::kCUDA);
  const at::Tensor w = torch::randn({2, 2, 3, 3}, torch::kCUDA);
  // Rows [4, 6) read input rows [3, 7); a band of rows [4, 8) misses row 3.
  CHECK_THROWS_WITH(ops::conv2d_rows(x.narrow(2, 4, 4), w, at::Tensor(), {1, 1}, {1, 1}, {1, 1},
                                     1, 4, 10, 4, 6),
                    Contains("read input rows [3, 7)") && Contains("holds rows [4, 8)"));
  CHECK_THROWS_WITH(ops::conv2d_rows(x, w.cpu(), at::Tensor(), {1, 1}, {1, 1}, {1, 1}, 1, 0, 10,
                                     0, 10),
                    Contains("weight is on cpu"));
  CHECK_THROWS_WITH(ops::conv2d_rows(x.to(torch::kHalf), w.to(torch::kHalf), at::Tensor(), {1, 1},
                                     {1, 1}, {1, 1}, 1, 0, 10, 0, 10),
                    Contains("float32 and float64 only"));
}
