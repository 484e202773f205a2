// The drop-in trainer: NeuroFlux inside existing LibTorch code.
//
//   auto chain = neuroflux::chain_from_sequential(my_sequential, {1, 28, 28}, 10);
//   neuroflux::Trainer trainer(neuroflux::TrainerOptions(64 << 20).epochs(10).out_dir("run"));
//   neuroflux::FitResult result = trainer.fit(chain, train_dataset, val_dataset);
//
// The data sets may be NeuroFlux's ImageDataset or any LibTorch random-access data set of
// torch::data::Example<> (data/dataset_adapter.h), e.g. a class written like
// torch::data::datasets::MNIST, or one wrapped in .map(transforms::Normalize<>(...)).
//   result.exported->forward(images);   // the early-exit network
//   result.report.final.test_accuracy;
#pragma once

#include <torch/arg.h>
#include <torch/nn/modules/container/sequential.h>

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "neuroflux/config/config.h"
#include "neuroflux/data/dataset_adapter.h"
#include "neuroflux/data/image_set.h"
#include "neuroflux/models/unit_chain.h"
#include "neuroflux/report/report.h"

namespace neuroflux {

struct TrainerOptions {
  /// `budget_bytes`: the device memory the training may use (nullopt: unbounded).
  /* implicit */ TrainerOptions(std::optional<int64_t> budget_bytes = std::nullopt)
      : budget_bytes_(budget_bytes) {}

  /// Memory budget in bytes.
  TORCH_ARG(std::optional<int64_t>, budget_bytes);
  /// "neuroflux", "local" or "backprop".
  TORCH_ARG(std::string, method) = "neuroflux";
  /// Epochs (per block for NeuroFlux, which may stop a block sooner).
  TORCH_ARG(int64_t, epochs) = 10;
  /// Reference batch size (NeuroFlux plans per block; 0 = auto for backprop/local).
  TORCH_ARG(int64_t, batch_size) = 128;
  /// Largest batch any block may use.
  TORCH_ARG(int64_t, max_batch_size) = 256;
  /// "sgd" or "adam".
  TORCH_ARG(std::string, optimizer) = "sgd";
  TORCH_ARG(double, lr) = 0.05;
  TORCH_ARG(double, momentum) = 0.9;
  TORCH_ARG(double, weight_decay) = 5e-4;
  /// Where the optimizer state lives: "device" or "host" (outside the budget; README "The
  /// optimizer's floor").
  TORCH_ARG(std::string, optimizer_state) = "device";
  /// Update each parameter during backward and free its gradient (train.fused_update).
  TORCH_ARG(bool, fused_update) = false;
  /// Random crop + flip on the training images.
  TORCH_ARG(bool, augment) = false;
  /// Auxiliary head family: "adaptive", "fixed" or "deep" (README "Auxiliary heads").
  TORCH_ARG(std::string, aux) = "adaptive";
  /// Units per gradient-isolated module: a number, kStageModules (one per resolution stage) or
  /// kAutoModules (NeuroFlux's planner chooses; models/unit_groups.h).
  TORCH_ARG(int64_t, module_units) = 1;
  /// What each unit learns from: "ce", "ce+sim", "ce+recon" or "ce+sim+recon".
  TORCH_ARG(std::string, local_loss) = "ce";
  /// Early-exit tolerance: the shallowest head within this of the best is exported.
  TORCH_ARG(double, exit_tolerance) = 0.005;
  TORCH_ARG(int64_t, seed) = 0;
  /// Intra-op threads; 0 = all cores.
  TORCH_ARG(int64_t, threads) = 0;
  /// "cpu" or "cuda[:N]".
  TORCH_ARG(std::string, device) = "cpu";
  /// Where reports, checkpoints and models go; "" keeps everything in memory.
  TORCH_ARG(std::string, out_dir) = "";


 public:  // TORCH_ARG leaves the section private
  /// The equivalent run config (what report.json records).
  Config to_config() const;
};

struct FitResult {
  torch::nn::Sequential exported{nullptr};   ///< units 0..exit + that unit's head
  Report report;
};

class Trainer {
  // NeuroFlux's own set (or the optional test set) goes straight to the non-template fit.
  template <typename T>
  static constexpr bool is_image_dataset =
      std::is_same_v<std::decay_t<T>, data::ImageDataset> ||
      std::is_same_v<std::decay_t<T>, std::optional<data::ImageDataset>>;

 public:
  explicit Trainer(TrainerOptions options);

  /// Trains `chain` on `train`, choosing blocks / early stopping / the exit on `val`, and
  /// reports accuracy on `test` (or on `val` when no test set is given).
  FitResult fit(UnitChain chain, const data::ImageDataset& train, const data::ImageDataset& val,
                const std::optional<data::ImageDataset>& test = std::nullopt);

  /// The same for LibTorch data sets of Example<> (image [C, H, W], class index), gathered once
  /// into host memory; a bad example is a std::invalid_argument naming the set and its index.
  template <typename TrainSet, typename ValSet,
            typename = std::enable_if_t<!is_image_dataset<TrainSet> || !is_image_dataset<ValSet>>>
  FitResult fit(UnitChain chain, TrainSet&& train, ValSet&& val) {
    const int64_t classes = chain->num_classes();
    return fit(std::move(chain), data::to_image_dataset(train, "train", classes),
               data::to_image_dataset(val, "val", classes));
  }
  template <typename TrainSet, typename ValSet, typename TestSet,
            typename = std::enable_if_t<!is_image_dataset<TrainSet> || !is_image_dataset<ValSet> ||
                                        !is_image_dataset<TestSet>>>
  FitResult fit(UnitChain chain, TrainSet&& train, ValSet&& val, TestSet&& test) {
    const int64_t classes = chain->num_classes();
    return fit(std::move(chain), data::to_image_dataset(train, "train", classes),
               data::to_image_dataset(val, "val", classes),
               std::optional<data::ImageDataset>(data::to_image_dataset(test, "test", classes)));
  }

  const TrainerOptions& options() const { return options_; }

 private:
  TrainerOptions options_;
};

}  // namespace neuroflux
