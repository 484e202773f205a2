// NeuroFlux inside ordinary LibTorch code: the user's own torch::nn::Sequential and their own
// torch::data data set, trained under a 24 MiB budget, giving back the early-exit network.
//
//   ./example_drop_in_trainer [epochs]
#include <neuroflux/models/model_zoo.h>
#include <neuroflux/models/sequential_stage.h>
#include <neuroflux/trainer.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>

namespace nn = torch::nn;

// The user's data set, written the way LibTorch's torch::data::datasets::MNIST is: tensors loaded
// once in the constructor, get() returns one (image, label) example. Here the "files" are
// generated: class k is a bright square in the k-th cell of a 3x2 grid on a noisy 24x24 RGB image,
// tinted per class.
class GridSquares : public torch::data::datasets::Dataset<GridSquares> {
 public:
  enum class Mode { kTrain, kTest };
  static constexpr int64_t kClasses = 6;

  explicit GridSquares(Mode mode) {
    const int64_t count = mode == Mode::kTrain ? 3000 : 600;
    torch::manual_seed(mode == Mode::kTrain ? 1 : 2);
    images_ = torch::randn({count, 3, 24, 24}) * 0.5;
    targets_ = torch::randint(kClasses, {count}, torch::kInt64);
    for (int64_t i = 0; i < count; ++i) {
      const int64_t k = targets_[i].item<int64_t>();
      const int64_t row = (k / 3) * 12 + 2, col = (k % 3) * 8 + 1;
      images_[i].index({torch::indexing::Slice(), torch::indexing::Slice(row, row + 8),
                        torch::indexing::Slice(col, col + 6)}) += 1.0 + 0.1 * k;
    }
  }

  torch::data::Example<> get(size_t index) override {
    return {images_[static_cast<int64_t>(index)], targets_[static_cast<int64_t>(index)]};
  }
  torch::optional<size_t> size() const override { return images_.size(0); }

 private:
  torch::Tensor images_, targets_;
};

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
  auto chain = neuroflux::chain_from_sequential(network, {3, 24, 24}, GridSquares::kClasses,
                                                classifier);

  // The data as a LibTorch user has it; a transform applied with .map() runs once, before
  // training.
  GridSquares train(GridSquares::Mode::kTrain);
  auto val = GridSquares(GridSquares::Mode::kTest)
                 .map(torch::data::transforms::Normalize<>(0.0, 1.0));

  neuroflux::Trainer trainer(neuroflux::TrainerOptions(24 << 20).epochs(epochs).batch_size(64).lr(0.05));
  neuroflux::FitResult result = trainer.fit(chain, train, val);

  const auto& r = result.report;
  std::printf("blocks %zu, exit unit %lld, val accuracy %.3f, exported params %lld of %lld, "
              "peak %lld bytes under a budget of %lld\n",
              r.blocks.size(), static_cast<long long>(r.final.exit_unit), r.final.val_accuracy,
              static_cast<long long>(r.final.params), static_cast<long long>(r.full_model_params),
              static_cast<long long>(r.peak_memory_bytes), static_cast<long long>(*r.budget_bytes));
  const at::Tensor logits = result.exported->forward(torch::randn({2, 3, 24, 24}));
  return logits.size(1) == GridSquares::kClasses && r.peak_memory_bytes <= *r.budget_bytes ? 0 : 1;
}
