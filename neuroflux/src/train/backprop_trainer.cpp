#include "neuroflux/train/backprop_trainer.h"

#include <torch/torch.h>

#include "neuroflux/distributed/data_parallel.h"
#include "neuroflux/distributed/grad_reducer.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/models/module_snapshot.h"
#include "neuroflux/optim/optim.h"
#include "neuroflux/train/batch_size_search.h"
#include "neuroflux/train/memory_strategy.h"
#include "neuroflux/util/progress.h"
#include "train/whole_network_run.h"

namespace neuroflux {

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

namespace {

/// The batch search may have tried another batch last: makes the chosen one's schedule current
/// (its costs profiled under the budget here when the search did not run, as on resume).
void use_chosen_schedule(MemoryStrategy& strategy, UnitChainImpl& model, WholeNetworkRun& run,
                         const Config& config) {
  const MeasuredPhase profiling = run.phase("profile");
  const ModuleSnapshot snapshot(model);
  strategy.use_batch(run.batch_size());
  snapshot.restore(model);
  strategy.reset_statistics();
  log_line(run.what() + " with memory.strategy " + config.memory.strategy + " at batch " +
           std::to_string(run.batch_size()) + ": " +
           strategy.describe().at("schedule").at("describe").get<std::string>());
}

/// Data parallel: every rank starts from rank 0's weights (or its own checkpoint's), and hooks
/// all-reduce gradient buckets while backward runs. Null when the run is one process.
std::unique_ptr<GradReducer> join_ranks_whole(const WholeNetworkRun& run, UnitChain& model,
                                        const TrainingSetup& setup) {
  if (!run.comm()) return nullptr;
  if (!run.resuming()) broadcast_module(*run.comm(), *model);
  return std::make_unique<GradReducer>(setup.comm, model->parameters(),
                                       setup.config.distributed.bucket_bytes);
}

EpochHooks backprop_hooks(WholeNetworkRun& run, UnitChain& model, MemoryStrategy& strategy,
                          torch::optim::Optimizer& optimizer, GradReducer* reducer,
                          const data::DataSplits& data) {
  EpochHooks hooks;
  hooks.set_lr = [&optimizer](double lr) { set_learning_rate(optimizer, lr); };
  if (reducer && updates_in_backward(optimizer)) throw fused_update_data_parallel_error();
  hooks.train_step = [&strategy, &optimizer, reducer](const at::Tensor& x, const at::Tensor& y) {
    optimizer.zero_grad();
    const at::Tensor logits = strategy.forward(x);
    const at::Tensor loss = torch::cross_entropy_loss(logits, y);
    if (reducer) reducer->arm();
    loss.backward();
    if (reducer) reducer->finish();
    optimizer.step();
    return StepResult{loss.detach(), logits.detach().argmax(1).eq(y).sum()};
  };
  hooks.test_logits = [&model](const at::Tensor& x) { return model->forward(x); };
  hooks.validate = [&run, &model, &data, logits = hooks.test_logits]() {
    model->eval();
    return Validation{run.accuracy(logits, data.val), {}};
  };
  hooks.validation_name = "val accuracy";
  hooks.checkpoint = [&run, &model, &optimizer](int64_t) {
    run.save_checkpoint(*model, &optimizer);
  };
  return hooks;
}

}  // namespace

BackpropTrainer::BackpropTrainer(TrainingSetup setup) : setup_(std::move(setup)) {}

Report BackpropTrainer::fit(UnitChain model, const data::DataSplits& data) {
  const Config& config = setup_.config;
  model->to(setup_.device);
  model->train();
  WholeNetworkRun run(setup_, data, "backprop " + model->name());
  if (run.comm() && config.model.row_centric.enabled)
    throw ConfigError(
        "/model/row_centric: not with more than one rank: its stripes accumulate "
        "weight gradients straight into .grad, past the gradient all-reduce");
  MemoryStrategy strategy(model, config, setup_.device);
  run.settle_batch_size(*model, [&](int64_t b) {
    strategy.use_batch(b);
    auto trial = [&] {
      auto optimizer =
          make_optimizer(model->parameters(), config.train, config.memory, config.train.lr);
      run.trial_on_random_batch(*model, b, [&](const at::Tensor& x, const at::Tensor& y) {
        optimizer->zero_grad();
        torch::cross_entropy_loss(strategy.forward(x), y).backward();
        optimizer->step();
      });
    };
    try {
      trial();
    } catch (const std::exception& e) {
      // The smallest budget a refusal names is the least-memory schedule's need; at that budget
      // the fastest schedule predicted to fit may miss by a few percent.
      if (!is_out_of_memory(e) || !strategy.fall_back_to_least_memory()) throw;
      for (auto& p : model->parameters()) p.mutable_grad() = at::Tensor();
      trial();
    }
  });
  if (!strategy.plain()) use_chosen_schedule(strategy, *model, run, config);

  auto optimizer = make_optimizer(model->parameters(), config.train, config.memory, config.train.lr);
  if (run.resuming()) run.load_checkpoint(*model, optimizer.get());
  const std::unique_ptr<GradReducer> reducer = join_ranks_whole(run, model, setup_);

  const double test_accuracy = run.train_and_test(
      *model, backprop_hooks(run, model, strategy, *optimizer, reducer.get(), data));

  Report report = run.report(*model, test_accuracy);
  if (!strategy.plain()) {
    report.blocks.back().predicted_peak_bytes = strategy.predicted_peak_bytes();
    report.extra["memory_strategy"] = strategy.describe();
  }
  run.write_results(model, report);
  return report;
}

}  // namespace neuroflux
