#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "neuroflux/data/synthetic.h"
#include "neuroflux/models/model_zoo.h"
#include "neuroflux/models/unit_groups.h"
#include "neuroflux/trainer.h"
#include "neuroflux/util/errors.h"

using namespace neuroflux;

namespace {

data::ImageDataset synthetic_images(int64_t samples, uint64_t seed) {
  data::SyntheticOptions options;
  options.channels = 3;
  options.image_size = 16;
  options.num_classes = 4;
  options.samples = samples;
  options.seed = seed;
  return data::ImageDataset(data::make_synthetic(options));
}

UnitChain small_vgg() {
  ModelConfig model;
  model.name = "vgg11";
  model.width = 0.125;
  return build_model(model, {3, 16, 16}, 4);
}

}  // namespace

TEST_CASE("the drop-in trainer takes the head family, modules and local loss",
          "[train][integration]") {
  UnitChain chain = small_vgg();
  const auto stages = module_sizes(kStageModules, *chain);
  REQUIRE(static_cast<int64_t>(stages.size()) < chain->size());
  const std::string method = GENERATE(as<std::string>{}, "neuroflux", "local");
  INFO("method " << method);
  Trainer trainer(TrainerOptions()
                      .method(method)
                      .epochs(1)
                      .batch_size(32)
                      .threads(1)
                      .seed(3)
                      .aux("deep")
                      .module_units(kStageModules)
                      .local_loss("ce+sim"));
  FitResult result = trainer.fit(chain, synthetic_images(384, 1), synthetic_images(128, 2));
  // One head per stage: the modules are what trained.
  if (method == "neuroflux")
    CHECK(result.report.extra.at("head_val_accuracy").size() == stages.size());
  CHECK(result.report.config.at("neuroflux").at("local_loss") == "ce+sim");
  int64_t exported_units = 0;
  for (const auto& item : result.exported->named_children())
    if (item.key().rfind("unit", 0) == 0) ++exported_units;
  CHECK(exported_units <= static_cast<int64_t>(stages.size()));
  CHECK(result.exported->forward(torch::randn({2, 3, 16, 16})).size(1) == 4);
}

TEST_CASE("a bad drop-in option names its config key", "[train][unit]") {
  auto error_of = [](const TrainerOptions& options) {
    try {
      Trainer(options).fit(small_vgg(), synthetic_images(64, 1), synthetic_images(32, 2));
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(error_of(TrainerOptions().aux("huge")).rfind("/neuroflux/aux:", 0) == 0);
  CHECK(error_of(TrainerOptions().local_loss("mse")).rfind("/neuroflux/local_loss:", 0) == 0);
  CHECK(error_of(TrainerOptions().module_units(-5)).rfind("/neuroflux/module_units:", 0) == 0);
}

namespace {

// A user's own data set, written like torch::data::datasets::MNIST: the trainer takes it as is.
class UserImages : public torch::data::datasets::Dataset<UserImages> {
 public:
  explicit UserImages(data::ImageSet set) : set_(std::move(set)) {}
  torch::data::Example<> get(size_t index) override {
    const auto i = static_cast<int64_t>(index);
    return {set_.images[i], set_.labels[i]};
  }
  torch::optional<size_t> size() const override { return set_.size(); }

 private:
  data::ImageSet set_;
};

}  // namespace

TEST_CASE("the drop-in trainer trains on a LibTorch data set and a mapped one",
          "[train][integration]") {
  UserImages train(synthetic_images(256, 1).set());
  auto val = UserImages(synthetic_images(96, 2).set())
                 .map(torch::data::transforms::Normalize<>(0.0, 1.0));
  Trainer trainer(TrainerOptions().method("local").epochs(1).batch_size(32).threads(1).seed(3));
  FitResult result = trainer.fit(small_vgg(), train, val);
  CHECK(result.report.final.val_accuracy >= 0.0);
  CHECK(result.exported->forward(torch::randn({2, 3, 16, 16})).size(1) == 4);
  // Labels beyond the chain's classes are caught before training starts.
  data::ImageSet wrong = synthetic_images(32, 4).set();
  wrong.labels[5] = 9;
  UserImages bad(wrong);
  CHECK_THROWS_WITH(trainer.fit(small_vgg(), bad, val),
                    Catch::Contains("train: example 5 has label 9, expected 0..3"));
}
