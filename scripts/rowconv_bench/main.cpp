// Standalone row-centric benchmark: vgg16's conv stack without batch norm (13 conv3x3 + ReLU,
// 5 max-pools, as the model zoo builds it) plus a linear head on pooled features, one training
// step (forward, cross-entropy, backward) at a time: the MemoryMeter peak during the step and
// the median seconds per step, plain against overlap and two-phase at several band counts.
// It links only the operator and memory-meter sources, so it builds in minutes where the whole
// library does not; `neuroflux bench-rowconv` measures the same through the model zoo.
//
//   scripts/rowconv_bench/build.sh && /tmp/rowconv_bench [batch] [size] [repeats]
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "neuroflux/memory_meter.h"
#include "neuroflux/ops/row_centric.h"

namespace nn = torch::nn;
namespace ops = neuroflux::ops;

int main(int argc, char** argv) {
  const int64_t batch = argc > 1 ? std::atoll(argv[1]) : 8;
  const int64_t size = argc > 2 ? std::atoll(argv[2]) : 128;
  const int64_t repeats = argc > 3 ? std::atoll(argv[3]) : 3;
  neuroflux::MemoryMeter& meter = neuroflux::MemoryMeter::cpu();
  torch::manual_seed(0);
  nn::Sequential stack;
  int64_t c = 3;
  for (int64_t v : {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0}) {
    if (v == 0) {
      stack->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2).stride(2)));
      continue;
    }
    stack->push_back(nn::Conv2d(nn::Conv2dOptions(c, v, 3).padding(1)));
    stack->push_back(nn::ReLU());
    c = v;
  }
  nn::Linear head(512, 10);
  // One row-centric stack per vgg stage (its convs up to and including the pool), as LR-CNN
  // segments a network: a single stack over all 18 layers would give its 4-row output a
  // receptive field of nearly the whole image, so every band would recompute almost everything.
  std::vector<std::vector<ops::RowLayer>> stages(1);
  for (const auto& l : ops::row_layers_of(stack, "vgg16")) {
    stages.back().push_back(l);
    if (l.kind == ops::RowLayer::Kind::kMaxPool) stages.emplace_back();
  }
  stages.pop_back();
  const at::Tensor x = torch::randn({batch, 3, size, size});
  const at::Tensor y = torch::randint(0, 10, {batch}, torch::kLong);

  struct Row {
    const char* scheme;
    int64_t stripes, peak;
    double seconds;
  };
  std::vector<Row> rows;
  auto run = [&](const char* name, int64_t stripes, ops::RowScheme scheme) {
    auto step = [&] {
      stack->zero_grad();
      head->zero_grad();
      at::Tensor f;
      if (stripes == 0) {
        f = stack->forward(x);
      } else {
        ops::RowCentricOptions o;
        o.stripes = stripes;
        o.scheme = scheme;
        f = x;
        for (const auto& stage : stages) f = ops::row_centric_forward(f, stage, o);
      }
      torch::nn::functional::cross_entropy(head->forward(f.mean({2, 3})), y).backward();
    };
    step();  // warm-up; allocates the gradients
    std::vector<double> t;
    int64_t peak = 0;
    for (int64_t r = 0; r < repeats; ++r) {
      meter.reset_peak();
      const auto t0 = std::chrono::steady_clock::now();
      step();
      t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      peak = std::max(peak, meter.peak());
    }
    std::sort(t.begin(), t.end());
    rows.push_back({name, stripes, peak, t[t.size() / 2]});
    std::fprintf(stderr, "%s %lld: %.1f MiB %.3f s\n", name, (long long)stripes, peak / 1048576.0,
                 t[t.size() / 2]);
  };
  run("plain", 0, ops::RowScheme::kOverlap);
  for (int64_t s : {4, 8, 16}) run("overlap", s, ops::RowScheme::kOverlap);
  for (int64_t s : {4, 8, 16}) run("two_phase", s, ops::RowScheme::kTwoPhase);
  std::printf("vgg16 (no BN) conv stack, %lldx3x%lldx%lld, CPU, %d threads, median of %lld steps\n\n",
              (long long)batch, (long long)size, (long long)size, at::get_num_threads(),
              (long long)repeats);
  std::printf("| scheme | stripes | peak MiB | peak / plain | s / step | time / plain |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (const Row& r : rows) {
    std::printf("| %s | %s | %.1f | %.2f | %.3f | %.2fx |\n", r.scheme,
                r.stripes ? std::to_string(r.stripes).c_str() : "-", r.peak / 1048576.0,
                double(r.peak) / rows[0].peak, r.seconds, r.seconds / rows[0].seconds);
  }
  return 0;
}
