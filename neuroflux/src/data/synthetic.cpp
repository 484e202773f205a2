#include "neuroflux/data/synthetic.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "neuroflux/memory/memory_meter.h"

namespace neuroflux::data {
namespace {

constexpr double kPi = 3.14159265358979323846;
// Samples rendered at once: bounds the [n, S, S] temporaries for large sets.
constexpr int64_t kChunk = 1024;

void require_at_least(int64_t value, const char* name, int64_t minimum = 1) {
  if (value < minimum) {
    throw std::invalid_argument("make_synthetic: " + std::string(name) + " must be at least " +
                                std::to_string(minimum) + ", got " + std::to_string(value));
  }
}

}  // namespace

ImageSet make_synthetic(const SyntheticOptions& options) {
  require_at_least(options.samples, "samples");
  require_at_least(options.channels, "channels");
  require_at_least(options.image_size, "image_size", 4);
  require_at_least(options.num_classes, "num_classes", 2);
  if (!(options.noise >= 0)) {
    throw std::invalid_argument("make_synthetic: noise must be non-negative, got " +
                                std::to_string(options.noise));
  }
  const int64_t n = options.samples, channels = options.channels, size = options.image_size;
  const int64_t classes = options.num_classes;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);

  UntrackedScope untracked;

  // Classes form a grid of orientations x frequencies, so many classes stay separable without
  // crowding either axis; the per-sample jitter below makes neighbours overlap a little, which is
  // what keeps the set from being trivially separable.
  const int64_t frequencies = classes <= 4 ? 1 : classes <= 12 ? 2 : 3;
  const int64_t orientations = (classes + frequencies - 1) / frequencies;
  const auto class_ids = torch::arange(classes, torch::kInt64);
  const auto class_angle = (class_ids / frequencies).to(torch::kFloat32) * (kPi / orientations);
  // Cycles per image, from 1.5 up to what the size resolves without aliasing (4 pixels a cycle).
  const double low = 1.5, high = std::max(low, std::min(6.0, size / 4.0));
  const auto level = (class_ids % frequencies).to(torch::kFloat32);
  const auto class_freq =
      frequencies == 1 ? torch::full({classes}, low, f32)
                       : low * torch::pow(high / low, level / static_cast<double>(frequencies - 1));
  // A class-specific colour mix: each channel's weight is a cosine of the class index with a
  // channel-dependent phase. A single channel carries no colour information.
  auto class_colour = torch::ones({classes, channels}, f32);
  if (channels > 1) {
    const auto phase = class_ids.to(torch::kFloat32).unsqueeze(1) * (2 * kPi / classes) +
                       torch::arange(channels, f32).unsqueeze(0) * (2 * kPi / channels);
    class_colour = 0.35 + 0.65 * torch::cos(phase);
  }

  // Balanced classes in a seeded order.
  auto labels =
      (torch::arange(n, torch::kInt64) % classes).index_select(0, torch::randperm(n, gen));
  // Per-sample nuisances: orientation and frequency jitter, stripe phase (a shift across the
  // stripes), the centre of the Gaussian window (a shift of the whole pattern), contrast and a
  // colour jitter. The jitter is sized so neighbouring classes overlap: a small CNN reaches about
  // 80% on 3x32x32 in two epochs and levels off below 90% (measured), rather than solving it.
  const double angle_step = kPi / orientations;
  const auto angle =
      class_angle.index_select(0, labels) + torch::randn({n}, gen, f32) * (0.35 * angle_step);
  const auto freq =
      class_freq.index_select(0, labels) * torch::exp(torch::randn({n}, gen, f32) * 0.15);
  const auto phase = torch::rand({n}, gen, f32) * (2 * kPi);
  const auto centre = (torch::rand({n, 2}, gen, f32) * 0.5 + 0.25) * size;
  const auto contrast = torch::rand({n}, gen, f32) * 0.3 + 0.7;
  const auto colour =
      class_colour.index_select(0, labels) + torch::randn({n, channels}, gen, f32) * 0.3;

  ImageSet set;
  set.num_classes = classes;
  set.labels = labels;
  set.images = torch::empty({n, channels, size, size}, f32);
  const auto coords = torch::arange(size, f32) + 0.5;
  const auto x = coords.view({1, 1, size});
  const auto y = coords.view({1, size, 1});
  const double window = size / 2.5;
  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t m = std::min(kChunk, n - start);
    auto slice = [&](const torch::Tensor& t) { return t.narrow(0, start, m).view({m, 1, 1}); };
    const auto a = slice(angle), f = slice(freq), p = slice(phase), c = slice(contrast);
    const auto cx = slice(centre.select(1, 0)), cy = slice(centre.select(1, 1));
    // Stripes: sin(2 pi f / S * (x cos a + y sin a) + phase), under a Gaussian window.
    auto pattern = torch::sin((x * torch::cos(a) + y * torch::sin(a)) * (f * (2 * kPi / size)) + p);
    // The Gaussian window is separable: two [m, 1, S] / [m, S, 1] factors, one exp per row.
    const double spread = -1.0 / (2 * window * window);
    pattern.mul_(torch::exp((x - cx).square() * spread));
    pattern.mul_(torch::exp((y - cy).square() * spread));
    pattern.mul_(c);
    // Pixel-like values: noise around 0.5 drawn straight into the output, then the pattern.
    auto out = set.images.narrow(0, start, m);
    if (options.noise > 0) {
      out.normal_(0.5, options.noise, gen);
    } else {
      out.fill_(0.5);
    }
    out.addcmul_(pattern.unsqueeze(1), colour.narrow(0, start, m).view({m, channels, 1, 1}));
  }
  return set;
}

}  // namespace neuroflux::data
