#include "neuroflux/trainer.h"

#include <torch/torch.h>

#include "neuroflux/exit/exported_model.h"
#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/models/unit_groups.h"
#include "neuroflux/train/backprop_trainer.h"
#include "neuroflux/train/local_trainer.h"
#include "neuroflux/train/neuroflux_trainer.h"
#include "neuroflux/train/run.h"
#include "neuroflux/util/atomic_file.h"

namespace neuroflux {

Config TrainerOptions::to_config() const {
  Config c;
  c.method = method_;
  c.device = device_;
  c.seed = seed_;
  c.threads = threads_;
  c.memory.budget = budget_bytes_;
  c.train.epochs = epochs_;
  c.train.batch_size = batch_size_;
  c.train.max_batch_size = std::max(max_batch_size_, batch_size_);
  c.train.optimizer = optimizer_;
  c.train.lr = lr_;
  c.train.momentum = momentum_;
  c.train.weight_decay = weight_decay_;
  c.train.fused_update = fused_update_;
  c.memory.optimizer_state = optimizer_state_;
  c.data.augment = augment_;
  c.data.name = "user";
  c.model.name = "user";
  c.neuroflux.exit_tolerance = exit_tolerance_;
  c.neuroflux.aux = aux_;
  c.neuroflux.module_units = module_units_;
  c.neuroflux.local_loss = local_loss_;
  c.output.dir = out_dir_;
  return c;
}

Trainer::Trainer(TrainerOptions options) : options_(std::move(options)) {}

FitResult Trainer::fit(UnitChain chain, const data::ImageDataset& train,
                       const data::ImageDataset& val,
                       const std::optional<data::ImageDataset>& test) {
  TORCH_CHECK(options_.method() == "neuroflux" || options_.method() == "local" ||
                  options_.method() == "backprop",
              "TrainerOptions::method: expected neuroflux, local or backprop, got ",
              options_.method());
  const Config config = options_.to_config();
  // The checks a JSON config gets, so a bad option names its key (/neuroflux/aux, ...).
  Config::from_json(nlohmann::json{
      {"neuroflux", config.to_json().at("neuroflux")},
      {"memory", {{"optimizer_state", config.memory.optimizer_state}}},
      {"train", {{"fused_update", config.train.fused_update}}}});
  chain = apply_module_units(chain, config);
  configure_threads(config.threads);
  MemoryMeter::of(parse_device(config.device));
  torch::manual_seed(static_cast<uint64_t>(config.seed));

  data::DataSplits splits;
  splits.train = train.set();
  splits.val = val.set();
  splits.test = test ? test->set() : val.set();
  const auto& images = splits.train.images;
  TORCH_CHECK(images.dim() == 4, "Trainer::fit: training images must be [N, C, H, W], got ",
              images.sizes());
  splits.channels = images.size(1);
  splits.height = images.size(2);
  splits.width = images.size(3);
  splits.num_classes = std::max(splits.train.num_classes, chain->num_classes());

  TrainingSetup setup;
  setup.config = config;
  setup.device = parse_device(config.device);
  setup.out_dir = config.output.dir;
  if (!setup.out_dir.empty()) prepare_output_directory(setup.out_dir);

  FitResult result;
  if (config.method == "neuroflux") {
    NeuroFluxTrainer trainer(setup);
    result.report = trainer.fit(chain, splits);
    result.exported = trainer.exported();
  } else {
    result.report = config.method == "local" ? LocalTrainer(setup).fit(chain, splits)
                                             : BackpropTrainer(setup).fit(chain, splits);
    result.exported = exit_network(chain, chain->size() - 1, chain->classifier());
  }
  return result;
}

}  // namespace neuroflux
