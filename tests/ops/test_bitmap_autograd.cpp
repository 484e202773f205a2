// BitmapReLU, PackedConv2d, PackedMaxPool2d: forward results and gradients bit-identical to the
// dense ATen layers, what the graph keeps alive, double backward refused, module plumbing.
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <vector>

#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/models/bitmap_layers.h"
#include "neuroflux/ops/bitmap.h"
#include "ops/bitmap_test_util.h"

namespace ops = neuroflux::ops;
namespace nn = torch::nn;
using Catch::Matchers::Contains;
using neuroflux::test::bits_equal;
using neuroflux::test::grads_equal;
using neuroflux::test::random_sparse;

namespace {

at::Tensor leaf(const at::Tensor& t) { return t.detach().clone().set_requires_grad(true); }

// Copies the parameters of `from` into `to` (same names, as for a state dict).
void copy_parameters(nn::Module& to, const nn::Module& from) {
  torch::NoGradGuard no_grad;
  auto dst = to.named_parameters();
  for (const auto& p : from.named_parameters()) dst[p.key()].copy_(p.value());
}

}  // namespace

TEST_CASE("BitmapReLU matches torch::relu forward and backward bit for bit", "[ops][unit]") {
  for (const auto dtype : {at::kDouble, at::kFloat, at::kHalf, at::kBFloat16}) {
    INFO("dtype " << dtype);
    // Exact zeros and -0.0 included: relu's gradient at 0 is 0, as ATen's.
    at::Tensor x0 = random_sparse({4, 3, 9, 11}, 0.2, dtype, 10);
    x0.view(-1).slice(0, 0, 50, 7).fill_(-0.0);
    for (const at::Tensor& base : {x0, x0.transpose(1, 3)}) {
      const at::Tensor g = torch::randn(base.sizes(), torch::dtype(dtype));
      at::Tensor a = leaf(base), b = leaf(base);
      // ATen has no CPU relu for float16: the dense reference runs in float32 (exact here).
      at::Tensor ya =
          dtype == at::kHalf ? torch::relu(a.to(at::kFloat)).to(at::kHalf) : torch::relu(a);
      at::Tensor yb = ops::BitmapReLU()(b);
      REQUIRE(torch::equal(ya, yb));
      ya.backward(g);
      yb.backward(g);
      REQUIRE(grads_equal(a.grad(), b.grad()));
    }
  }
}

TEST_CASE("BitmapReLU keeps a channels-last layout without copying", "[ops][unit]") {
  const at::Tensor x0 =
      random_sparse({2, 5, 6, 7}, 0.2, at::kFloat, 15).contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor a = leaf(x0), b = leaf(x0);
  at::Tensor ya = torch::relu(a), yb = ops::bitmap_relu(b);
  REQUIRE(yb.is_contiguous(at::MemoryFormat::ChannelsLast));
  REQUIRE(torch::equal(ya, yb));
  const at::Tensor g = torch::randn(ya.sizes());  // a contiguous gradient: another layout
  ya.backward(g);
  yb.backward(g);
  REQUIRE(grads_equal(a.grad(), b.grad()));
}

TEST_CASE("BitmapReLU handles empty input and no-grad calls", "[ops][unit]") {
  at::Tensor e = leaf(torch::empty({0, 3}));
  at::Tensor y = ops::bitmap_relu(e);
  REQUIRE(y.sizes() == e.sizes());
  y.sum().backward();
  REQUIRE(e.grad().sizes() == e.sizes());

  const at::Tensor x = torch::randn({5, 7});
  REQUIRE(torch::equal(ops::bitmap_relu(x), torch::relu(x)));
  {
    c10::InferenceMode inference;  // bypasses autograd: the dense fallback kernel
    REQUIRE(torch::equal(ops::bitmap_relu(x), torch::relu(x)));
  }
  REQUIRE_THROWS_WITH(ops::bitmap_relu(torch::ones({3}, torch::kInt)),
                      Contains("bitmap_relu") && Contains("got Int"));
}

TEST_CASE("PackedConv2d matches torch::nn::Conv2d bit for bit", "[ops][unit]") {
  struct Case {
    const char* name;
    nn::Conv2dOptions options;
  };
  const std::vector<Case> cases{
      {"3x3 pad 1", nn::Conv2dOptions(6, 8, 3).padding(1)},
      {"no bias, stride 2", nn::Conv2dOptions(6, 8, 3).stride(2).bias(false)},
      {"dilation 2, groups 2", nn::Conv2dOptions(6, 4, 3).dilation(2).groups(2).padding(2)},
      {"1x1", nn::Conv2dOptions(6, 5, 1)},
      {"same, odd kernel", nn::Conv2dOptions(6, 4, 3).padding(torch::kSame)},
      {"same, even kernel (asymmetric)", nn::Conv2dOptions(6, 4, {2, 4}).padding(torch::kSame)},
      {"valid", nn::Conv2dOptions(6, 4, 3).padding(torch::kValid)},
      {"reflect padding", nn::Conv2dOptions(6, 4, 3).padding(1).padding_mode(torch::kReflect)},
  };
  for (const auto dtype : {at::kDouble, at::kFloat}) {
    for (const auto& c : cases) {
      INFO(c.name << ", dtype " << dtype);
      torch::manual_seed(11);
      nn::Conv2d dense(c.options);
      ops::PackedConv2d packed(c.options);
      dense->to(dtype);
      packed->to(dtype);
      copy_parameters(*packed, *dense);
      // A post-ReLU input: about half zeros.
      const at::Tensor x0 = torch::relu(random_sparse({3, 6, 13, 10}, 0.1, dtype, 12));
      at::Tensor a = leaf(x0), b = leaf(x0);
      at::Tensor ya = dense(a), yb = packed(b);
      REQUIRE(torch::equal(ya, yb));
      const at::Tensor g = torch::randn(ya.sizes(), torch::dtype(dtype));
      ya.backward(g);
      yb.backward(g);
      REQUIRE(grads_equal(a.grad(), b.grad()));
      REQUIRE(grads_equal(dense->weight.grad(), packed->weight.grad()));
      if (dense->bias.defined()) REQUIRE(grads_equal(dense->bias.grad(), packed->bias.grad()));
    }
  }
}

TEST_CASE("PackedConv2d: frozen weight, unbatched and channels-last input", "[ops][unit]") {
  torch::manual_seed(13);
  nn::Conv2d dense(nn::Conv2dOptions(4, 3, 3).padding(1));
  ops::PackedConv2d packed(nn::Conv2dOptions(4, 3, 3).padding(1));
  copy_parameters(*packed, *dense);
  const at::Tensor x0 = torch::relu(torch::randn({2, 4, 7, 9}));

  SECTION("frozen weight: the input is not saved, grad_input still exact") {
    dense->weight.set_requires_grad(false);
    packed->weight.set_requires_grad(false);
    at::Tensor a = leaf(x0), b = leaf(x0);
    dense(a).pow(2).sum().backward();
    packed(b).pow(2).sum().backward();
    REQUIRE(grads_equal(a.grad(), b.grad()));
    REQUIRE(grads_equal(dense->bias.grad(), packed->bias.grad()));
  }
  SECTION("unbatched (C, H, W)") {
    at::Tensor a = leaf(x0[0]), b = leaf(x0[0]);
    at::Tensor ya = dense(a), yb = packed(b);
    REQUIRE(yb.sizes() == ya.sizes());
    REQUIRE(torch::equal(ya, yb));
    ya.sum().backward();
    yb.sum().backward();
    REQUIRE(grads_equal(a.grad(), b.grad()));
    REQUIRE(grads_equal(dense->weight.grad(), packed->weight.grad()));
  }
  SECTION("channels-last input") {
    const at::Tensor xc = x0.contiguous(at::MemoryFormat::ChannelsLast);
    at::Tensor a = leaf(xc).contiguous(at::MemoryFormat::ChannelsLast);
    at::Tensor b = leaf(xc).contiguous(at::MemoryFormat::ChannelsLast);
    a.retain_grad();
    b.retain_grad();
    at::Tensor ya = dense(a), yb = packed(b);
    REQUIRE(torch::equal(ya, yb));
    ya.sum().backward();
    yb.sum().backward();
    REQUIRE(grads_equal(dense->weight.grad(), packed->weight.grad()));
    REQUIRE(torch::equal(a.grad(), b.grad()));
  }
  SECTION("no grad: plain conv, nothing packed") {
    torch::NoGradGuard no_grad;
    REQUIRE(torch::equal(dense(x0), packed(x0)));
  }
}

TEST_CASE("PackedMaxPool2d matches torch::nn::MaxPool2d bit for bit", "[ops][unit]") {
  const std::vector<nn::MaxPool2dOptions> cases{
      nn::MaxPool2dOptions(2),
      nn::MaxPool2dOptions(3).stride(2).padding(1),
      nn::MaxPool2dOptions(3).stride(2).ceil_mode(true),
      nn::MaxPool2dOptions({2, 3}).stride({1, 2}).dilation(2),
  };
  for (const auto dtype : {at::kDouble, at::kFloat}) {
    for (size_t i = 0; i < cases.size(); ++i) {
      INFO("case " << i << ", dtype " << dtype);
      nn::MaxPool2d dense(cases[i]);
      ops::PackedMaxPool2d packed(cases[i]);
      // Post-ReLU: many windows are all zeros, so ties decide where the gradient goes.
      const at::Tensor x0 = torch::relu(random_sparse({2, 3, 11, 14}, 0.3, dtype, 14));
      for (const at::Tensor& base : {x0, x0[0], x0.contiguous(at::MemoryFormat::ChannelsLast)}) {
        at::Tensor a = leaf(base), b = leaf(base);
        at::Tensor ya = dense(a), yb = packed(b);
        REQUIRE(torch::equal(ya, yb));
        const at::Tensor g = torch::randn(ya.sizes(), torch::dtype(dtype));
        ya.backward(g);
        yb.backward(g);
        REQUIRE(grads_equal(a.grad(), b.grad()));
      }
    }
  }
}

TEST_CASE("relu-conv-relu-pool-conv: loss and every gradient bit-identical to dense",
          "[ops][unit]") {
  torch::manual_seed(21);
  const auto c1 = nn::Conv2dOptions(3, 8, 3).padding(1);
  const auto c2 = nn::Conv2dOptions(8, 4, 3);
  const auto relu = [](const at::Tensor& t) { return torch::relu(t); };
  nn::Sequential dense(nn::Functional{relu}, nn::Conv2d(c1), nn::Functional{relu}, nn::MaxPool2d(2),
                       nn::Conv2d(c2));
  nn::Sequential packed(ops::BitmapReLU(), ops::PackedConv2d(c1), ops::BitmapReLU(),
                        ops::PackedMaxPool2d(2), ops::PackedConv2d(c2));
  copy_parameters(*packed, *dense);
  REQUIRE(packed->named_parameters().keys() == dense->named_parameters().keys());

  const at::Tensor x0 = torch::randn({4, 3, 16, 16});
  const at::Tensor target = torch::randn({4, 4, 6, 6});
  at::Tensor a = leaf(x0), b = leaf(x0);
  at::Tensor la = torch::mse_loss(dense->forward(a), target);
  at::Tensor lb = torch::mse_loss(packed->forward(b), target);
  REQUIRE(bits_equal(la, lb));
  la.backward();
  lb.backward();
  REQUIRE(grads_equal(a.grad(), b.grad()));
  const auto pa = dense->named_parameters();
  const auto pb = packed->named_parameters();
  for (const auto& p : pa) {
    INFO(p.key());
    REQUIRE(grads_equal(p.value().grad(), pb[p.key()].grad()));
  }
}

TEST_CASE("the bitmap graph keeps fewer bytes alive than the dense one", "[ops][unit]") {
  auto& meter = neuroflux::MemoryMeter::cpu();
  torch::manual_seed(31);
  const auto opts = nn::Conv2dOptions(16, 16, 3).padding(1).bias(false);
  nn::Conv2d dense(opts);
  ops::PackedConv2d packed(opts);
  // Input to the ReLU: symmetric, so relu(x) has sparsity ~0.5.
  const at::Tensor x = torch::randn({8, 16, 32, 32}).set_requires_grad(true);
  const int64_t n = x.numel();

  // Bytes the graph holds after forward: everything new except the output itself.
  const auto kept_by_graph = [&](const std::function<at::Tensor()>& forward) {
    const int64_t before = meter.current();
    at::Tensor y = forward();
    const int64_t kept = meter.current() - before - static_cast<int64_t>(y.nbytes());
    y.sum().backward();  // the graph is usable
    return kept;
  };
  const int64_t dense_kept = kept_by_graph([&] { return dense(torch::relu(x)); });
  const int64_t packed_kept = kept_by_graph([&] { return packed(ops::bitmap_relu(x)); });

  const at::Tensor r = torch::relu(x);
  const int64_t nnz = r.count_nonzero().item<int64_t>();
  const int64_t mask_bytes = 4 * ((n + 31) / 32);
  INFO("dense graph keeps " << dense_kept << " B, bitmap graph " << packed_kept << " B, n " << n
                            << ", non-zeros " << nnz);
  // Dense: relu's output, saved by both relu and conv. Bitmap: relu's mask, conv's mask + values.
  REQUIRE(dense_kept == static_cast<int64_t>(r.nbytes()));
  REQUIRE(packed_kept == 2 * mask_bytes + 4 * nnz);
  REQUIRE(static_cast<double>(packed_kept) < 0.6 * static_cast<double>(dense_kept));
}

TEST_CASE("bitmap layers refuse double backward clearly", "[ops][unit]") {
  const at::Tensor x0 = torch::randn({2, 3, 8, 8});
  const auto gradient = [&](const std::function<at::Tensor(const at::Tensor&)>& f,
                            bool create_graph) {
    at::Tensor x = leaf(x0);
    return torch::autograd::grad({f(x).pow(2).sum()}, {x}, {}, /*retain_graph=*/true,
                                 create_graph)[0];
  };
  ops::PackedConv2d conv(nn::Conv2dOptions(3, 2, 3));
  ops::PackedMaxPool2d pool(2);
  const std::vector<std::pair<std::string, std::function<at::Tensor(const at::Tensor&)>>> layers{
      {"bitmap_relu", [](const at::Tensor& x) { return ops::bitmap_relu(x); }},
      {"packed_conv2d", [&](const at::Tensor& x) { return conv(x); }},
      {"packed_max_pool2d", [&](const at::Tensor& x) { return pool(x); }}};
  for (const auto& [name, f] : layers) {
    INFO(name);
    REQUIRE(gradient(f, false).defined());
    REQUIRE_THROWS_WITH(gradient(f, true), Contains(name + ": double backward is not supported"));
  }
}

TEST_CASE("packed modules are drop-in: state dict names, clone, printing", "[ops][unit]") {
  const auto opts = nn::Conv2dOptions(3, 5, 3).stride(2).padding(1);
  nn::Conv2d dense(opts);
  ops::PackedConv2d packed(opts);
  REQUIRE(packed->named_parameters().keys() == dense->named_parameters().keys());
  REQUIRE(packed->weight.sizes() == dense->weight.sizes());
  REQUIRE(dynamic_cast<nn::Conv2dImpl*>(packed.ptr().get()) != nullptr);

  auto copy = std::dynamic_pointer_cast<ops::PackedConv2dImpl>(packed->clone());
  REQUIRE(copy != nullptr);
  REQUIRE(torch::equal(copy->weight, packed->weight));
  REQUIRE(copy->weight.data_ptr() != packed->weight.data_ptr());
  REQUIRE(std::dynamic_pointer_cast<ops::PackedMaxPool2dImpl>(ops::PackedMaxPool2d(2)->clone()));
  REQUIRE(std::dynamic_pointer_cast<ops::BitmapReLUImpl>(ops::BitmapReLU()->clone()));

  std::ostringstream printed;
  printed << *packed << " " << *ops::PackedMaxPool2d(2) << " " << *ops::BitmapReLU();
  REQUIRE_THAT(printed.str(), Contains("neuroflux::ops::PackedConv2d(3, 5, kernel_size=[3, 3]") &&
                                  Contains("neuroflux::ops::PackedMaxPool2d(kernel_size=[2, 2]") &&
                                  Contains("neuroflux::ops::BitmapReLU()"));
}
