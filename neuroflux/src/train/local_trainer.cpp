#include "neuroflux/train/local_trainer.h"

#include <torch/torch.h>

#include <cstdio>

#include "neuroflux/distributed/data_parallel.h"
#include "neuroflux/distributed/grad_reducer.h"
#include "neuroflux/exit/exit_ensemble.h"
#include "neuroflux/exit/exit_selector.h"
#include "neuroflux/exit/exported_model.h"
#include "neuroflux/local/local_model.h"
#include "neuroflux/local/unit_step.h"
#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/optim/optim.h"
#include "neuroflux/train/block_trainer.h"
#include "train/unit_optimizers.h"
#include "train/whole_network_run.h"

namespace neuroflux {

namespace {

using Optimizers = UnitOptimizers;
/// Data parallel: one reducer per unit, so each unit's gradients are averaged right after its
/// own backward (buckets overlap that backward) and it steps before the next unit runs.
using Reducers = std::vector<std::unique_ptr<GradReducer>>;

/// One optimizer per unit, over the unit and its head.
Optimizers make_unit_optimizers(LocalModel& model, const Config& config, double lr) {
  Optimizers optimizers;
  for (int64_t i = 0; i < model->size(); ++i)
    optimizers.push_back(
        make_optimizer(model->unit_and_head_parameters(i), config.train, config.memory, lr));
  return optimizers;
}

/// All units with their heads on one batch, each unit on its predecessor's detached output.
UnitStepResult local_step(LocalModel& model, Optimizers& optimizers, const Reducers& reducers,
                          const at::Tensor& x, const at::Tensor& y) {
  at::Tensor h = x;
  UnitStepResult r;
  for (int64_t i = 0; i < model->size(); ++i) {
    r = unit_step(model->chain()->unit(i), model->head(i), *optimizers[i], h, y,
                  reducers.empty() ? nullptr : reducers[i].get(), UnitMode::kPlain,
                  &model->loss_terms(i));
    h = r.output;
  }
  return r;
}

/// The checkpoint after `epochs_done` epochs; the previous epoch's optimizer archive goes once
/// the new checkpoint, which no longer names it, is saved.
void save_local_checkpoint(WholeNetworkRun& run, LocalModel& model, const Optimizers& optimizers,
                           int64_t epochs_done) {
  const std::string& dir = run.checkpoint().dir();
  const std::string file = unit_optimizers_file(epochs_done);
  save_unit_optimizers(optimizers, 0, dir + "/" + file);
  run.save_checkpoint(*model, nullptr, nlohmann::json{{"optimizers_file", file}}, {file});
  if (epochs_done > 1) std::remove((dir + "/" + unit_optimizers_file(epochs_done - 1)).c_str());
}

/// Resuming: weights and loop state from the checkpoint, and every unit's optimizer state from
/// the archive it names.
void resume_local(WholeNetworkRun& run, LocalModel& model, Optimizers& optimizers) {
  run.load_checkpoint(*model, nullptr);
  const auto file = run.checkpoint().read_saved_state(
      [](const nlohmann::json& state) { return state.at("optimizers_file").get<std::string>(); });
  run.checkpoint().read_archive(file, [&](torch::serialize::InputArchive& archive) {
    load_unit_optimizers(optimizers, 0, archive);
  });
}

/// Data parallel: every rank starts from rank 0's weights (or its own checkpoint's); empty when
/// the run is one process.
Reducers join_ranks_per_unit(const WholeNetworkRun& run, LocalModel& model, const TrainingSetup& setup) {
  Reducers reducers;
  if (!run.comm()) return reducers;
  if (!run.resuming()) broadcast_module(*run.comm(), *model);
  for (int64_t i = 0; i < model->size(); ++i)
    reducers.push_back(std::make_unique<GradReducer>(setup.comm, model->unit_and_head_parameters(i),
                                                     setup.config.distributed.bucket_bytes));
  return reducers;
}

EpochHooks local_hooks(WholeNetworkRun& run, LocalModel& model, Optimizers& optimizers,
                       const Reducers& reducers) {
  EpochHooks hooks;
  hooks.set_lr = [&optimizers](double lr) {
    for (auto& opt : optimizers) set_learning_rate(*opt, lr);
  };
  hooks.train_step = [&model, &optimizers, &reducers](const at::Tensor& x, const at::Tensor& y) {
    const UnitStepResult r = local_step(model, optimizers, reducers, x, y);
    return StepResult{r.loss, r.correct};
  };
  hooks.validate = [&run, &model]() {
    const std::vector<double> heads = evaluate_block_heads(
        model, run.input(), Split::kVal, 0, model->size() - 1, run.eval_batch_size());
    return Validation{heads.back(), heads};
  };
  hooks.validation_name = "classifier val accuracy";
  hooks.checkpoint = [&run, &model, &optimizers](int64_t epochs_done) {
    save_local_checkpoint(run, model, optimizers, epochs_done);
  };
  hooks.test_logits = [&model](const at::Tensor& x) { return model->chain()->forward(x); };
  return hooks;
}

/// Every head's validation accuracy after the last epoch, and the shallowest exit within
/// neuroflux.exit_tolerance of the best: what local learning could ship instead of the network.
void add_exit_fields(Report& report, LocalModel& model, double exit_tolerance) {
  const std::vector<double> heads = report.history.empty()
                                        ? std::vector<double>(model->size(), 0.0)
                                        : report.history.back().head_val_accuracy;
  const ExitChoice exit =
      select_exit(std::vector<std::optional<double>>(heads.begin(), heads.end()), exit_tolerance);
  report.extra["head_val_accuracy"] = heads;
  report.extra["shallowest_good_exit"] = {
      {"unit", exit.unit},
      {"val_accuracy", exit.val_accuracy},
      {"params", parameter_count(exit_network(model, exit.unit))}};
}

/// neuroflux.exit_ensemble: the last two heads averaged, against the classifier alone, on
/// validation (select_exit: the same depth, so the more accurate wins). When the pair wins it
/// becomes the exported model: its test accuracy, size and exit replace the classifier's in
/// `report`, and the network is returned; otherwise null.
torch::nn::Sequential choose_ensemble(WholeNetworkRun& run, LocalModel& model, Report& report,
                                      const data::DataSplits& data, const Config& config) {
  const int64_t n = model->size();
  if (n < 2) return nullptr;
  MemoryLimitGuard limit(run.meter(), config.memory.budget);
  std::vector<std::vector<float>> log_probs;
  const std::vector<double> heads = evaluate_block_heads(model, run.input(), Split::kVal, 0, n - 1,
                                                         run.eval_batch_size(), &log_probs);
  std::vector<std::optional<double>> singles(static_cast<size_t>(n), std::nullopt);
  singles.back() = heads.back();
  std::vector<std::optional<double>> pairs(static_cast<size_t>(n - 1), std::nullopt);
  pairs.back() = ensemble_accuracy(log_probs[n - 2], log_probs[n - 1], data.val.labels);
  const ExitChoice exit = select_exit(singles, pairs, config.neuroflux.exit_tolerance);
  add_ensemble_fields(report, exit, pairs);
  if (!exit.ensemble) return nullptr;
  torch::nn::Sequential network = ensemble_exit_network(model, n - 2);
  network->eval();
  report.final.test_accuracy =
      run.accuracy([&network](const at::Tensor& x) { return network->forward(x); }, data.test);
  report.final.val_accuracy = exit.val_accuracy;
  report.final.params = parameter_count(network);
  report.final.exit_unit = n - 2;
  return network;
}

}  // namespace

LocalTrainer::LocalTrainer(TrainingSetup setup) : setup_(std::move(setup)) {}

Report LocalTrainer::fit(UnitChain chain, const data::DataSplits& data) {
  const Config& config = setup_.config;
  LocalModel model(chain, classic_head_specs(config, *chain), local_loss_spec(config));
  model->to(setup_.device);
  WholeNetworkRun run(setup_, data, "local " + chain->name());
  run.settle_batch_size(*model, [&](int64_t b) {
    Optimizers optimizers = make_unit_optimizers(model, config, config.train.lr);
    run.trial_on_random_batch(*model, b, [&](const at::Tensor& x, const at::Tensor& y) {
      local_step(model, optimizers, Reducers(), x, y);
    });
  });

  Optimizers optimizers = make_unit_optimizers(model, config, config.train.lr);
  if (run.resuming()) resume_local(run, model, optimizers);
  const Reducers reducers = join_ranks_per_unit(run, model, setup_);

  const double test_accuracy =
      run.train_and_test(*model, local_hooks(run, model, optimizers, reducers));

  Report report = run.report(*chain, test_accuracy);
  add_exit_fields(report, model, config.neuroflux.exit_tolerance);
  torch::nn::Sequential ensemble =
      config.neuroflux.exit_ensemble ? choose_ensemble(run, model, report, data, config) : nullptr;
  if (!ensemble) {
    run.write_results(chain, report);
  } else if (!setup_.out_dir.empty() && setup_.write_results) {
    ExportDescription description =
        describe_export(config, *chain, chain->size() - 2, model->specs()[chain->size() - 2]);
    description.next_head = model->specs().back();
    save_exported(ensemble, description, setup_.out_dir + "/model.pt");
    report.write(setup_.out_dir);
  }
  return report;
}

}  // namespace neuroflux
