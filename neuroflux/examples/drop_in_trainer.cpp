// NeuroFlux inside ordinary LibTorch code: the user's own torch::nn::Sequential and data set,
// trained under a 24 MiB budget, giving back the early-exit network.
//
//   ./example_drop_in_trainer [epochs]
#include <neuroflux/data/synthetic.h>
#include <neuroflux/models/model_zoo.h>
#include <neuroflux/models/sequential_stage.h>
#include <neuroflux/trainer.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>

namespace nn = torch::nn;

int main(int argc, char** argv) {
  const int64_t epochs = argc > 1 ? std::atoll(argv[1]) : 3;

  // The user's network: each child becomes a unit with its own auxiliary head.
  // (A Sequential cannot hold a plain Sequential in LibTorch; SequentialStage is one that can.)
  using neuroflux::SequentialStage;
  auto conv = [](int64_t in, int64_t out) {
    return SequentialStage(nn::Conv2d(nn::Conv2dOptions(in, out, 3).padding(1)),
                           nn::BatchNorm2d(out), nn::ReLU());
  };
  auto conv_pool = [](int64_t in, int64_t out) {
    return SequentialStage(nn::Conv2d(nn::Conv2dOptions(in, out, 3).padding(1)),
                           nn::BatchNorm2d(out), nn::ReLU(), nn::MaxPool2d(2));
  };
  nn::Sequential network(conv(3, 16), conv_pool(16, 32), conv(32, 32), conv_pool(32, 64));
  nn::Sequential classifier(nn::AdaptiveAvgPool2d(1), nn::Flatten(), nn::Linear(64, 6));
  auto chain = neuroflux::chain_from_sequential(network, {3, 24, 24}, 6, classifier);

  // The user's data, as torch::data datasets.
  neuroflux::data::SyntheticOptions data;
  data.channels = 3;
  data.image_size = 24;
  data.num_classes = 6;
  data.samples = 3000;
  data.seed = 1;
  neuroflux::data::ImageDataset train(neuroflux::data::make_synthetic(data));
  data.samples = 600;
  data.seed = 2;
  neuroflux::data::ImageDataset val(neuroflux::data::make_synthetic(data));

  neuroflux::Trainer trainer(neuroflux::TrainerOptions(24 << 20).epochs(epochs).batch_size(64).lr(0.05));
  neuroflux::FitResult result = trainer.fit(chain, train, val);

  const auto& r = result.report;
  std::printf("blocks %zu, exit unit %lld, val accuracy %.3f, exported params %lld of %lld, "
              "peak %lld bytes under a budget of %lld\n",
              r.blocks.size(), static_cast<long long>(r.final.exit_unit), r.final.val_accuracy,
              static_cast<long long>(r.final.params), static_cast<long long>(r.full_model_params),
              static_cast<long long>(r.peak_memory_bytes), static_cast<long long>(*r.budget_bytes));
  const at::Tensor logits = result.exported->forward(torch::randn({2, 3, 24, 24}));
  return logits.size(1) == 6 && r.peak_memory_bytes <= *r.budget_bytes ? 0 : 1;
}
