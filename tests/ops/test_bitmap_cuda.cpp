// CUDA kernels of the bitmap operators against the CPU ones, on random inputs of awkward sizes.
// Without a CUDA device (or with a CPU-only LibTorch) every test here skips itself, and the CTest
// entry "cuda" is reported as skipped; scripts/gpu-check.sh runs them where a GPU exists.
#include <torch/cuda.h>
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <vector>

#include "neuroflux/models/bitmap_layers.h"
#include "neuroflux/ops/bitmap.h"
#include "ops/bitmap_test_util.h"
#include "test_skip.h"

namespace ops = neuroflux::ops;
namespace nn = torch::nn;
using neuroflux::test::bits_equal;
using neuroflux::test::grads_equal;
using neuroflux::test::random_sparse;

namespace {

// Around warp (32), tile (2048 elements) and block boundaries, plus a large odd size.
const std::vector<std::vector<int64_t>> kCudaShapes{{0},    {1},    {31},   {32},      {33},
                                                {2047}, {2048}, {2049}, {5, 4099}, {3, 333333}};

}  // namespace

TEST_CASE("bitmap pack/unpack on CUDA equal the CPU kernels", "[cuda][unit]") {
  if (!torch::cuda::is_available()) NEUROFLUX_SKIP("no CUDA device");
  for (const auto dtype : neuroflux::test::kBitmapDtypes) {
    for (const auto& shape : kCudaShapes) {
      for (const double sparsity : {0.0, 0.5, 0.9, 1.0}) {
        INFO("dtype " << dtype << " sizes " << at::IntArrayRef(shape) << " sparsity " << sparsity);
        const at::Tensor x = random_sparse(shape, sparsity, dtype, 41);
        for (const at::Tensor& input : {x, x.dim() == 2 ? x.t() : x}) {  // contiguous or not
          auto [mask_cpu, values_cpu] = ops::bitmap_pack(input);
          auto [mask_gpu, values_gpu] = ops::bitmap_pack(input.cuda());
          REQUIRE(mask_gpu.is_cuda());
          REQUIRE(torch::equal(mask_cpu, mask_gpu.cpu()));
          REQUIRE(bits_equal(values_cpu, values_gpu.cpu()));
          const at::Tensor back = ops::bitmap_unpack(mask_gpu, values_gpu, input.sizes());
          REQUIRE(back.is_cuda());
          REQUIRE(bits_equal(back.cpu(), input));
        }
      }
    }
  }
}

TEST_CASE("bitmap unpack on CUDA rejects bad input like the CPU", "[cuda][unit]") {
  if (!torch::cuda::is_available()) NEUROFLUX_SKIP("no CUDA device");
  const at::Tensor x = random_sparse({100}, 0.5, at::kFloat, 42).cuda();
  auto [mask, values] = ops::bitmap_pack(x);
  REQUIRE_THROWS_WITH(ops::bitmap_unpack(mask, values.slice(0, 1), x.sizes()),
                      Catch::Matchers::Contains("set bits but values has"));
  REQUIRE_THROWS_WITH(ops::bitmap_unpack(mask, values, {97}),
                      Catch::Matchers::Contains("bits set past element 96"));
  REQUIRE_THROWS_WITH(ops::bitmap_unpack(mask, values.cpu(), x.sizes()),
                      Catch::Matchers::Contains("mask is on cuda"));
  REQUIRE_THROWS_WITH(ops::bitmap_pack(torch::ones({4}, torch::kInt).cuda()),
                      Catch::Matchers::Contains("got Int"));
}

TEST_CASE("bitmap relu kernels on CUDA equal the CPU kernels", "[cuda][unit]") {
  if (!torch::cuda::is_available()) NEUROFLUX_SKIP("no CUDA device");
  for (const auto dtype : neuroflux::test::kBitmapDtypes) {
    for (const auto& shape : kCudaShapes) {
      INFO("dtype " << dtype << " sizes " << at::IntArrayRef(shape));
      const at::Tensor x = random_sparse(shape, 0.3, dtype, 43);
      const at::Tensor g = random_sparse(shape, 0.0, dtype, 44);
      at::Tensor a = x.clone().set_requires_grad(true);
      at::Tensor b = x.cuda().set_requires_grad(true);
      at::Tensor ya = ops::bitmap_relu(a), yb = ops::bitmap_relu(b);
      REQUIRE(bits_equal(ya, yb.cpu()));
      ya.backward(g);
      yb.backward(g.cuda());
      REQUIRE(grads_equal(a.grad(), b.grad().cpu()));
    }
  }
}

TEST_CASE("packed layers on CUDA match the dense CUDA layers", "[cuda][unit]") {
  if (!torch::cuda::is_available()) NEUROFLUX_SKIP("no CUDA device");
  torch::manual_seed(45);
  const auto c1 = nn::Conv2dOptions(3, 8, 3).padding(1);
  const auto c2 = nn::Conv2dOptions(8, 4, 3);
  nn::Sequential dense(nn::Functional([](const at::Tensor& t) { return torch::relu(t); }),
                       nn::Conv2d(c1),
                       nn::Functional([](const at::Tensor& t) { return torch::relu(t); }),
                       nn::MaxPool2d(2), nn::Conv2d(c2));
  nn::Sequential packed(ops::BitmapReLU(), ops::PackedConv2d(c1), ops::BitmapReLU(),
                        ops::PackedMaxPool2d(2), ops::PackedConv2d(c2));
  dense->to(torch::kCUDA);
  packed->to(torch::kCUDA);
  {
    torch::NoGradGuard no_grad;
    auto dst = packed->named_parameters();
    for (const auto& p : dense->named_parameters()) dst[p.key()].copy_(p.value());
  }
  // Deterministic cuDNN algorithms, so the dense and packed runs take the same path.
  at::globalContext().setDeterministicCuDNN(true);
  at::globalContext().setBenchmarkCuDNN(false);
  const at::Tensor x0 = torch::randn({4, 3, 16, 16}, torch::kCUDA);
  at::Tensor a = x0.clone().set_requires_grad(true), b = x0.clone().set_requires_grad(true);
  at::Tensor la = dense->forward(a).pow(2).mean();
  at::Tensor lb = packed->forward(b).pow(2).mean();
  REQUIRE(bits_equal(la, lb));
  la.backward();
  lb.backward();
  REQUIRE(grads_equal(a.grad(), b.grad()));
  auto pb = packed->named_parameters();
  for (const auto& p : dense->named_parameters()) {
    INFO(p.key());
    REQUIRE(grads_equal(p.value().grad(), pb[p.key()].grad()));
  }
}
