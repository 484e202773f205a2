#include "neuroflux/train/backprop_trainer.h"

#include <torch/torch.h>

#include "neuroflux/distributed/data_parallel.h"
#include "neuroflux/distributed/grad_reducer.h"
#include "neuroflux/errors.h"
#include "neuroflux/exit/exported_model.h"
#include "neuroflux/memory_meter.h"
#include "neuroflux/models/module_snapshot.h"
#include "neuroflux/optim/optim.h"
#include "neuroflux/plan/lr_scaling.h"
#include "neuroflux/size_format.h"
#include "neuroflux/train/batch_size_search.h"
#include "neuroflux/train/block_input.h"
#include "neuroflux/train/evaluate.h"
#include "neuroflux/train/memory_strategy.h"
#include "neuroflux/util/atomic_file.h"
#include "neuroflux/util/progress.h"
#include "train/epoch_checkpoint.h"
#include "train/training_loop.h"

namespace neuroflux {

using nlohmann::json;

int64_t choose_batch_size(const Config& config, MemoryMeter& meter,
                          const std::function<void(int64_t)>& trial, const std::string& what) {
  const TrainConfig& t = config.train;
  if (t.batch_size == 0) {
    if (!config.memory.budget) return t.max_batch_size;
    return largest_fitting_batch(meter, config.memory.budget, t.max_batch_size, trial, what)
        .batch_size;
  }
  if (config.memory.budget)
    require_batch_fits(meter, config.memory.budget, t.batch_size, trial, what);
  return t.batch_size;
}

BackpropTrainer::BackpropTrainer(TrainingSetup setup) : setup_(std::move(setup)) {}

Report BackpropTrainer::fit(UnitChain model, const data::DataSplits& data) {
  const Config& config = setup_.config;
  const c10::Device device = setup_.device;
  MemoryMeter& meter = MemoryMeter::of(device);
  model->to(device);
  model->train();
  const std::string what = "backprop " + model->name();
  EpochCheckpoint checkpoint(setup_);
  Communicator* comm = setup_.comm.get();

  if (comm && config.model.row_centric.enabled)
    throw ConfigError("/model/row_centric: not with more than one rank: its stripes accumulate "
                      "weight gradients straight into .grad, past the gradient all-reduce");
  MemoryStrategy strategy(model, config, device);
  int64_t batch_size = 0;
  if (checkpoint.resuming()) {
    batch_size = checkpoint.saved_state().at("batch_size");
  } else {
    const ModuleSnapshot snapshot(*model);
    auto trial = [&](int64_t b) {
      strategy.use_batch(b);
      auto optimizer = make_optimizer(model->parameters(), config.train, config.train.lr);
      const at::Tensor x = torch::randn({b, data.channels, data.height, data.width},
                                        torch::TensorOptions(device));
      const at::Tensor y = torch::randint(0, data.num_classes, {b},
                                          torch::TensorOptions(device).dtype(torch::kLong));
      // Two steps: the second runs with the optimizer state and gradients the first created.
      for (int step = 0; step < 2; ++step) {
        optimizer->zero_grad();
        torch::cross_entropy_loss(strategy.forward(x), y).backward();
        optimizer->step();
      }
      for (auto& p : model->parameters()) p.mutable_grad() = at::Tensor();
    };
    batch_size = choose_batch_size(config, meter, trial, what);
    // The per-rank budget may admit different batches on different ranks; all take the smallest.
    if (comm) batch_size = comm->min(batch_size);
    snapshot.restore(*model);
  }
  if (!strategy.plain()) {
    // The search may have tried another batch last: make the chosen one's schedule current
    // (profiled under the budget here when the search did not run, as on resume).
    MemoryLimitGuard limit(meter, config.memory.budget);
    const ModuleSnapshot snapshot(*model);
    strategy.use_batch(batch_size);
    snapshot.restore(*model);
    strategy.reset_statistics();
    log_line(what + " with memory.strategy " + config.memory.strategy + " at batch " +
             std::to_string(batch_size) + ": " +
             strategy.describe().at("schedule").at("describe").get<std::string>());
  }

  auto optimizer = make_optimizer(model->parameters(), config.train, config.train.lr);
  LoopState state;
  if (checkpoint.resuming()) {
    state = checkpoint.load(*model, optimizer.get());
    log_line("resuming " + what + " after epoch " + std::to_string(state.epochs_done));
  }

  if (comm && !checkpoint.resuming()) broadcast_module(*comm, *model);
  // Data parallel: hooks all-reduce gradient buckets while backward runs.
  std::unique_ptr<GradReducer> reducer;
  if (comm)
    reducer = std::make_unique<GradReducer>(setup_.comm, model->parameters(),
                                            config.distributed.bucket_bytes);

  Report report = make_report_skeleton(config, *model, data, device);
  const auto input = comm ? sharded_input(data_input(data, config, device), comm->rank(),
                                          comm->world_size())
                          : data_input(data, config, device);
  meter.reset_peak();
  {
    MemoryLimitGuard limit(meter, config.memory.budget);
    const int64_t eval_batch = config.train.eval_batch_size > 0 ? config.train.eval_batch_size
                                                                : batch_size;
    for (int64_t epoch = state.epochs_done; epoch < config.train.epochs; ++epoch) {
      const double lr = scheduled_lr(config.train, run_lr(config.train, batch_size), epoch,
                                      config.train.epochs);
      set_learning_rate(*optimizer, lr);
      model->train();
      const EpochStats stats = run_epoch(
          *input, batch_size, epoch,
          "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(config.train.epochs),
          [&](const at::Tensor& x, const at::Tensor& y) {
            optimizer->zero_grad();
            const at::Tensor logits = strategy.forward(x);
            const at::Tensor loss = torch::cross_entropy_loss(logits, y);
            if (reducer) reducer->arm();
            loss.backward();
            if (reducer) reducer->finish();
            optimizer->step();
            return StepResult{loss.detach(), logits.detach().argmax(1).eq(y).sum()};
          });
      state.train_seconds += stats.seconds;
      if (comm) average_buffers(*comm, *model);

      Stopwatch eval_watch;
      model->eval();
      const EvalResult val = evaluate([&](const at::Tensor& x) { return model->forward(x); },
                                      data.val, eval_batch, device);
      const double eval_seconds = eval_watch.seconds();
      state.eval_seconds += eval_seconds;

      HistoryEntry entry;
      entry.block = 0;
      entry.epoch = epoch + 1;
      entry.train_loss = stats.loss;
      entry.train_accuracy = stats.accuracy;
      entry.val_accuracy = val.accuracy;
      entry.seconds = state.train_seconds;
      entry.epoch_seconds = stats.seconds;
      entry.epoch_cpu = stats.cpu;
      entry.eval_seconds = eval_seconds;
      entry.lr = lr;
      entry.batch_size = batch_size;
      state.history.push_back(entry);
      state.epochs_done = epoch + 1;
      state.peak_bytes = std::max(state.peak_bytes, meter.peak());
      log_line(what + " epoch " + std::to_string(epoch + 1) + ": loss " +
               std::to_string(stats.loss) + ", val accuracy " + std::to_string(val.accuracy) +
               ", " + std::to_string(stats.seconds) + " s");
      if (checkpoint.enabled()) checkpoint.save(*model, optimizer.get(), state, batch_size);
    }
    model->eval();
    Stopwatch eval_watch;
    report.final.val_accuracy =
        state.history.empty() ? 0.0 : state.history.back().val_accuracy;
    report.final.test_accuracy =
        evaluate([&](const at::Tensor& x) { return model->forward(x); }, data.test, eval_batch,
                 device)
            .accuracy;
    state.eval_seconds += eval_watch.seconds();
  }
  state.peak_bytes = std::max(state.peak_bytes, meter.peak());

  report.peak_memory_bytes = state.peak_bytes;
  report.train_seconds = state.train_seconds;
  report.eval_seconds = state.eval_seconds;
  report.history = state.history;
  report.final.params = report.full_model_params;
  report.final.exit_unit = model->size() - 1;
  report.blocks.push_back(whole_network_block(model->size(), batch_size, config.train.epochs, state));
  if (!strategy.plain()) {
    report.blocks.back().predicted_peak_bytes = strategy.predicted_peak_bytes();
    report.extra["memory_strategy"] = strategy.describe();
  }
  if (comm) add_rank_fields(report, *comm, config.distributed.mode);

  if (!setup_.out_dir.empty() && setup_.write_results) {
    save_full_chain(model, config, setup_.out_dir + "/model.pt");
    report.write(setup_.out_dir);
  }
  return report;
}

}  // namespace neuroflux
