#include "neuroflux/train/local_trainer.h"

#include <torch/torch.h>

#include "neuroflux/distributed/data_parallel.h"
#include "neuroflux/distributed/grad_reducer.h"
#include "neuroflux/exit/exit_selector.h"
#include "neuroflux/exit/exported_model.h"
#include "neuroflux/local/local_model.h"
#include "neuroflux/local/unit_step.h"
#include "neuroflux/memory_meter.h"
#include "neuroflux/models/module_snapshot.h"
#include "neuroflux/optim/optim.h"
#include "neuroflux/plan/lr_scaling.h"
#include "neuroflux/train/backprop_trainer.h"
#include "neuroflux/train/block_input.h"
#include "neuroflux/train/block_trainer.h"
#include "neuroflux/train/evaluate.h"
#include "neuroflux/util/atomic_file.h"
#include "neuroflux/util/progress.h"
#include "train/epoch_checkpoint.h"
#include "train/training_loop.h"

namespace neuroflux {

using nlohmann::json;

LocalTrainer::LocalTrainer(TrainingSetup setup) : setup_(std::move(setup)) {}

Report LocalTrainer::fit(UnitChain chain, const data::DataSplits& data) {
  const Config& config = setup_.config;
  const c10::Device device = setup_.device;
  MemoryMeter& meter = MemoryMeter::of(device);
  LocalModel model(chain, fixed_head_specs(chain->size(), config.neuroflux.aux_width, config.model.batch_norm));
  model->to(device);
  const int64_t n = model->size();
  const std::string what = "local " + chain->name();

  auto make_optimizers = [&](double lr) {
    std::vector<std::unique_ptr<torch::optim::Optimizer>> optimizers;
    for (int64_t i = 0; i < n; ++i)
      optimizers.push_back(make_optimizer(model->unit_and_head_parameters(i), config.train, lr));
    return optimizers;
  };
  // Data parallel: one reducer per unit, so each unit's gradients are averaged right after its
  // own backward (buckets overlap that backward) and it steps before the next unit runs.
  std::vector<std::unique_ptr<GradReducer>> reducers;
  // All units with their heads on one batch, each unit on its predecessor's detached output.
  auto local_step = [&](std::vector<std::unique_ptr<torch::optim::Optimizer>>& optimizers,
                        const at::Tensor& x, const at::Tensor& y) {
    at::Tensor h = x;
    UnitStepResult r;
    for (int64_t i = 0; i < n; ++i) {
      r = unit_step(model->chain()->unit(i), model->head(i), *optimizers[i], h, y,
                    reducers.empty() ? nullptr : reducers[i].get());
      h = r.output;
    }
    return r;
  };

  EpochCheckpoint checkpoint(setup_);
  Communicator* comm = setup_.comm.get();

  int64_t batch_size = 0;
  if (checkpoint.resuming()) {
    batch_size = checkpoint.saved_state().at("batch_size");
  } else {
    const ModuleSnapshot snapshot(*model);
    auto trial = [&](int64_t b) {
      auto optimizers = make_optimizers(config.train.lr);
      const at::Tensor x = torch::randn({b, data.channels, data.height, data.width},
                                        torch::TensorOptions(device));
      const at::Tensor y = torch::randint(0, data.num_classes, {b},
                                          torch::TensorOptions(device).dtype(torch::kLong));
      for (int step = 0; step < 2; ++step) local_step(optimizers, x, y);
      for (auto& p : model->parameters()) p.mutable_grad() = at::Tensor();
    };
    batch_size = choose_batch_size(config, meter, trial, what);
    if (comm) batch_size = comm->min(batch_size);
    snapshot.restore(*model);
  }

  auto optimizers = make_optimizers(config.train.lr);
  LoopState state;
  if (checkpoint.resuming()) {
    state = checkpoint.load(*model, nullptr);
    // Per-unit optimizer states travel in their own archive.
    torch::serialize::InputArchive archive;
    archive.load_from(checkpoint.dir() + "/" +
                      checkpoint.saved_state().at("optimizers_file").get<std::string>());
    for (int64_t i = 0; i < n; ++i) {
      torch::serialize::InputArchive unit_archive;
      archive.read("unit" + std::to_string(i), unit_archive);
      optimizers[i]->load(unit_archive);
    }
    log_line("resuming " + what + " after epoch " + std::to_string(state.epochs_done));
  }

  if (comm) {
    if (!checkpoint.resuming()) broadcast_module(*comm, *model);
    for (int64_t i = 0; i < n; ++i)
      reducers.push_back(std::make_unique<GradReducer>(
          setup_.comm, model->unit_and_head_parameters(i), config.distributed.bucket_bytes));
  }

  Report report = make_report_skeleton(config, *chain, data, device);
  auto input = comm ? sharded_input(data_input(data, config, device), comm->rank(),
                                    comm->world_size())
                    : data_input(data, config, device);
  const int64_t eval_batch = config.train.eval_batch_size > 0 ? config.train.eval_batch_size
                                                              : batch_size;
  std::vector<double> heads(static_cast<size_t>(n), 0.0);
  meter.reset_peak();
  {
    MemoryLimitGuard limit(meter, config.memory.budget);
    for (int64_t epoch = state.epochs_done; epoch < config.train.epochs; ++epoch) {
      const double lr = scheduled_lr(config.train, run_lr(config.train, batch_size), epoch,
                                      config.train.epochs);
      for (auto& opt : optimizers) set_learning_rate(*opt, lr);
      model->train();
      const EpochStats stats = run_epoch(
          *input, batch_size, epoch,
          "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(config.train.epochs),
          [&](const at::Tensor& x, const at::Tensor& y) {
            const UnitStepResult r = local_step(optimizers, x, y);
            return StepResult{r.loss, r.correct};
          });
      state.train_seconds += stats.seconds;
      if (comm) average_buffers(*comm, *model);
      Stopwatch eval_watch;
      heads = evaluate_block_heads(model, *input, Split::kVal, 0, n - 1, eval_batch);
      const double eval_seconds = eval_watch.seconds();
      state.eval_seconds += eval_seconds;

      HistoryEntry entry;
      entry.epoch = epoch + 1;
      entry.train_loss = stats.loss;
      entry.train_accuracy = stats.accuracy;
      entry.val_accuracy = heads.back();
      entry.seconds = state.train_seconds;
      entry.epoch_seconds = stats.seconds;
      entry.epoch_cpu = stats.cpu;
      entry.eval_seconds = eval_seconds;
      entry.lr = lr;
      entry.batch_size = batch_size;
      entry.head_val_accuracy = heads;
      state.history.push_back(entry);
      state.epochs_done = epoch + 1;
      state.peak_bytes = std::max(state.peak_bytes, meter.peak());
      log_line(what + " epoch " + std::to_string(epoch + 1) + ": loss " +
               std::to_string(stats.loss) + ", classifier val accuracy " +
               std::to_string(heads.back()) + ", " + std::to_string(stats.seconds) + " s");
      if (checkpoint.enabled()) {
        const std::string optimizers_file = "step-" + std::to_string(epoch + 1) + "-optimizers.pt";
        write_atomic_with(checkpoint.dir() + "/" + optimizers_file, [&](const std::string& t) {
          torch::serialize::OutputArchive archive;
          for (int64_t i = 0; i < n; ++i) {
            torch::serialize::OutputArchive unit_archive;
            optimizers[i]->save(unit_archive);
            archive.write("unit" + std::to_string(i), unit_archive);
          }
          archive.save_to(t);
        });
        checkpoint.save(*model, nullptr, state, batch_size, {{"optimizers_file", optimizers_file}});
        if (epoch > 0)
          std::remove((checkpoint.dir() + "/step-" + std::to_string(epoch) + "-optimizers.pt").c_str());
      }
    }
    if (state.history.size() > 0) heads = state.history.back().head_val_accuracy;
    model->eval();
    Stopwatch eval_watch;
    report.final.test_accuracy =
        evaluate([&](const at::Tensor& x) { return model->chain()->forward(x); }, data.test,
                 eval_batch, device)
            .accuracy;
    state.eval_seconds += eval_watch.seconds();
  }
  state.peak_bytes = std::max(state.peak_bytes, meter.peak());

  std::vector<std::optional<double>> head_accuracy(heads.begin(), heads.end());
  const ExitChoice exit = select_exit(head_accuracy, config.neuroflux.exit_tolerance);
  report.peak_memory_bytes = state.peak_bytes;
  report.train_seconds = state.train_seconds;
  report.eval_seconds = state.eval_seconds;
  report.history = state.history;
  report.final.val_accuracy = heads.back();
  report.final.params = report.full_model_params;
  report.final.exit_unit = n - 1;
  report.extra["head_val_accuracy"] = heads;
  report.extra["shallowest_good_exit"] = {{"unit", exit.unit}, {"val_accuracy", exit.val_accuracy},
                                          {"params", parameter_count(exit_network(model, exit.unit))}};
  report.blocks.push_back(whole_network_block(n, batch_size, config.train.epochs, state));
  if (comm) add_rank_fields(report, *comm, config.distributed.mode);

  if (!setup_.out_dir.empty() && setup_.write_results) {
    save_full_chain(chain, config, setup_.out_dir + "/model.pt");
    report.write(setup_.out_dir);
  }
  return report;
}

}  // namespace neuroflux
