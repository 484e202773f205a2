#include "neuroflux/train/pipeline_trainer.h"

#include <torch/torch.h>

#include <deque>

#include "neuroflux/distributed/communicator.h"
#include "neuroflux/distributed/data_parallel.h"
#include "neuroflux/errors.h"
#include "neuroflux/exit/exit_selector.h"
#include "neuroflux/exit/exported_model.h"
#include "neuroflux/local/local_model.h"
#include "neuroflux/local/unit_step.h"
#include "neuroflux/memory_meter.h"
#include "neuroflux/models/module_snapshot.h"
#include "neuroflux/optim/optim.h"
#include "neuroflux/plan/stage_placement.h"
#include "neuroflux/profile/profiler.h"
#include "neuroflux/train/checkpoint.h"
#include "neuroflux/util/atomic_file.h"
#include "neuroflux/util/progress.h"
#include "train/training_loop.h"

namespace neuroflux {

using nlohmann::json;

namespace {

constexpr int kTagLength = 11, kTagActivations = 12, kTagLabels = 13;

/// Micro-batches between two neighbouring stages. Every message has the full micro-batch shape
/// (a short batch is padded, its true length travels first), so the receiver can post its
/// receives ahead: `depth` posted receives are the bounded queue, and Gloo completes a send only
/// once its receive is posted, so a sender runs at most `depth` micro-batches ahead. A phase
/// (an epoch, an evaluation) ends with `depth` empty messages, which consume exactly the
/// receives still posted.
class Link {
 public:
  Link(Communicator& comm, int peer, std::vector<int64_t> shape, int64_t depth)
      : comm_(comm), peer_(peer), shape_(std::move(shape)), depth_(depth) {}

  void send(const at::Tensor& x, const at::Tensor& y) {
    const int64_t len = x.size(0);
    at::Tensor length = torch::tensor({len}, torch::kLong);
    at::Tensor xs = torch::zeros(shape_), ys = torch::zeros({shape_[0]}, torch::kLong);
    if (len > 0) {
      xs.narrow(0, 0, len).copy_(x);
      ys.narrow(0, 0, len).copy_(y);
    }
    comm_.send(length, peer_, kTagLength);
    comm_.send(xs, peer_, kTagActivations);
    comm_.send(ys, peer_, kTagLabels);
  }

  void end_phase() {
    for (int64_t i = 0; i < depth_; ++i) send(torch::zeros({0}), torch::zeros({0}));
  }

  /// Calls fn for every micro-batch of one phase, in order.
  void receive_phase(const std::function<void(const at::Tensor&, const at::Tensor&)>& fn) {
    std::deque<Slot> queue;
    for (int64_t i = 0; i < depth_; ++i) queue.push_back(post());
    bool ended = false;
    while (!queue.empty()) {
      Slot slot = std::move(queue.front());
      queue.pop_front();
      for (auto& op : slot.ops) op->wait();
      const int64_t len = slot.length.item<int64_t>();
      if (len == 0) {
        ended = true;  // the remaining posted receives are this phase's other end markers
        continue;
      }
      if (!ended) queue.push_back(post());
      fn(slot.x.narrow(0, 0, len), slot.y.narrow(0, 0, len));
    }
  }

 private:
  struct Slot {
    at::Tensor length, x, y;
    std::vector<std::unique_ptr<PendingOp>> ops;
  };
  Slot post() {
    Slot s{torch::zeros({1}, torch::kLong), torch::empty(shape_),
           torch::empty({shape_[0]}, torch::kLong), {}};
    s.ops.push_back(comm_.recv_async(s.length, peer_, kTagLength));
    s.ops.push_back(comm_.recv_async(s.x, peer_, kTagActivations));
    s.ops.push_back(comm_.recv_async(s.y, peer_, kTagLabels));
    return s;
  }

  Communicator& comm_;
  int peer_;
  std::vector<int64_t> shape_;
  int64_t depth_;
};

std::vector<int64_t> with_batch(int64_t batch, const std::vector<int64_t>& sample) {
  std::vector<int64_t> shape{batch};
  shape.insert(shape.end(), sample.begin(), sample.end());
  return shape;
}

}  // namespace

Profile pipeline_profile(const Config& config, UnitChain chain, const c10::Device& device) {
  chain->to(device);
  Stopwatch watch;
  const ModuleSnapshot snapshot(*chain);
  Profiler profiler(profiler_options(config), device);
  LocalModel probe(chain, config.method == "local"
                              ? fixed_head_specs(chain->size(), config.neuroflux.aux_width, config.model.batch_norm)
                              : choose_head_specs(config, chain, profiler));
  probe->to(device);
  Profile profile = profiler.profile(probe);
  snapshot.restore(*chain);
  profile.seconds = watch.seconds();
  return profile;
}

StagePlacement pipeline_placement(const Config& config, const Profile& profile,
                                  const data::DataSplits& data, int64_t ranks) {
  const Planner planner(profile, planner_inputs(config, data.train.size(), data.val.size(),
                                                data.test.size()));
  return place_stages(profile, planner, ranks, config.train.batch_size,
                      config.train.max_batch_size, config.memory.budget);
}

PipelineTrainer::PipelineTrainer(TrainingSetup setup) : setup_(std::move(setup)) {
  TORCH_CHECK(setup_.comm, "PipelineTrainer needs a communicator");
}

Report PipelineTrainer::fit(UnitChain chain, const data::DataSplits& data) {
  const Config& config = setup_.config;
  const c10::Device device = setup_.device;
  Communicator& comm = *setup_.comm;
  const int rank = comm.rank(), ranks = comm.world_size();
  MemoryMeter& meter = MemoryMeter::of(device);
  const int64_t n = chain->size();
  chain->to(device);
  // Every rank checkpoints its own stage after each epoch (rank k under OUT/rank-k/); a resumed
  // job restarts all ranks from the epoch they all saved.
  Checkpointer checkpointer(setup_.out_dir.empty() ? "" : setup_.out_dir + "/checkpoint");
  const std::optional<json> saved =
      setup_.resume && !setup_.out_dir.empty() ? checkpointer.peek() : std::nullopt;
  if (saved) check_resumable(saved->at("state"), config, checkpointer.dir());
  if (setup_.resume)
    check_same_checkpoint(comm, saved ? saved->at("state").at("epochs_done").get<int64_t>() : -1,
                          checkpointer.dir());

  // Local learning's fixed heads exist before profiling, as in LocalTrainer, so both start from
  // the same weights; NeuroFlux's adaptive heads come out of rank 0's profiling.
  LocalModel model{nullptr};
  if (config.method == "local") {
    model = LocalModel(chain, fixed_head_specs(n, config.neuroflux.aux_width, config.model.batch_norm));
    model->to(device);
  }
  // Rank 0 measures; all place the stages from its figures, so all agree.
  // Rank 0 measures (or, resuming, reuses what it measured then); all place the stages from its
  // figures, so all agree.
  std::string profile_text;
  if (rank == 0)
    profile_text = saved ? saved->at("state").at("profile").dump()
                         : pipeline_profile(config, chain, device).to_json().dump();
  const Profile profile = Profile::from_json(json::parse(comm.broadcast_string(profile_text, 0)));
  if (config.method != "local") {
    std::vector<AuxHeadSpec> heads;
    for (const auto& u : profile.units) heads.push_back(u.head);
    model = LocalModel(chain, heads);
    model->to(device);
    if (!saved) broadcast_module(comm, *model, 0);
  }

  const StagePlacement placement = pipeline_placement(config, profile, data, ranks);
  if (rank == 0) log_line("pipeline placement:\n" + placement.table());
  const PipelineStage stage = placement.stages[rank];
  const int64_t first = stage.first_unit, last = stage.last_unit, batch = placement.batch_size;
  const int64_t depth = config.distributed.micro_batches_in_flight;
  std::unique_ptr<Link> from_prev, to_next;
  if (rank > 0)
    from_prev = std::make_unique<Link>(
        comm, rank - 1, with_batch(batch, chain->output_shape(first - 1)), depth);
  if (rank + 1 < ranks)
    to_next = std::make_unique<Link>(comm, rank + 1, with_batch(batch, chain->output_shape(last)),
                                     depth);

  std::vector<std::unique_ptr<torch::optim::Optimizer>> optimizers;
  for (int64_t i = first; i <= last; ++i)
    optimizers.push_back(make_optimizer(model->unit_and_head_parameters(i), config.train,
                                        config.train.lr));
  LoopState state;
  double compute_seconds = 0;
  int64_t micro_batches = 0;
  if (saved) {
    state = LoopState::from_json(*checkpointer.load(*model, nullptr));
    compute_seconds = saved->at("state").at("compute_seconds");
    micro_batches = saved->at("state").at("micro_batches");
    torch::serialize::InputArchive archive;
    archive.load_from(checkpointer.dir() + "/" +
                      saved->at("state").at("optimizers_file").get<std::string>());
    for (int64_t i = first; i <= last; ++i) {
      torch::serialize::InputArchive unit_archive;
      archive.read("unit" + std::to_string(i), unit_archive);
      optimizers[i - first]->load(unit_archive);
    }
    log_line("pipeline rank " + std::to_string(rank) + ": resuming after epoch " +
             std::to_string(state.epochs_done));
  }
  auto save_checkpoint = [&](int64_t epochs_done) {
    if (setup_.out_dir.empty()) return;
    const std::string optimizers_file = "step-" + std::to_string(epochs_done) + "-optimizers.pt";
    write_atomic_with(checkpointer.dir() + "/" + optimizers_file, [&](const std::string& t) {
      torch::serialize::OutputArchive archive;
      for (int64_t i = first; i <= last; ++i) {
        torch::serialize::OutputArchive unit_archive;
        optimizers[i - first]->save(unit_archive);
        archive.write("unit" + std::to_string(i), unit_archive);
      }
      archive.save_to(t);
    });
    json s = state.to_json();
    s["optimizers_file"] = optimizers_file;
    s["compute_seconds"] = compute_seconds;
    s["micro_batches"] = micro_batches;
    s["config"] = resumable_config(config);
    s["profile"] = profile.to_json();
    checkpointer.save(*model, nullptr, s, epochs_done);
    if (epochs_done > 1)
      std::remove((checkpointer.dir() + "/step-" + std::to_string(epochs_done - 1) +
                   "-optimizers.pt").c_str());
  };
  auto input = data_input(data, config, device);

  // One phase through this stage: rank 0 reads `source`, the others receive; `process` runs the
  // stage's units on a micro-batch and returns what the next stage gets.
  auto run_phase = [&](const std::function<void(const BatchFn&)>& source,
                       const std::function<at::Tensor(const at::Tensor&, const at::Tensor&)>& process) {
    auto handle = [&](const at::Tensor& x, const at::Tensor& y) {
      const at::Tensor out = process(x.to(device), y.to(device));
      if (to_next) to_next->send(out.to(at::kCPU), y.to(at::kCPU));
    };
    if (from_prev)
      from_prev->receive_phase(handle);
    else
      source(handle);
    if (to_next) to_next->end_phase();
  };
  // Heads' correct counts of every unit, summed over the stages (each fills its own units).
  auto evaluate_split = [&](Split split) {
    torch::NoGradGuard no_grad;
    for (int64_t i = first; i <= last; ++i) {
      model->chain()->unit(i)->eval();
      model->head(i)->eval();
    }
    at::Tensor correct = torch::zeros({n}, torch::kDouble);
    run_phase([&](const BatchFn& fn) { input->in_order(split, batch, fn); },
              [&](const at::Tensor& x, const at::Tensor& y) {
                at::Tensor h = x;
                for (int64_t i = first; i <= last; ++i) {
                  h = model->chain()->unit(i)->forward(h);
                  correct[i] += model->head(i)->forward(h).argmax(1).eq(y).sum().item<double>();
                }
                return h;
              });
    comm.all_reduce_sum(correct);
    correct /= static_cast<double>(std::max<int64_t>(1, input->size(split)));
    return std::vector<double>(correct.data_ptr<double>(), correct.data_ptr<double>() + n);
  };

  Report report = make_report_skeleton(config, *chain, data, device);
  std::vector<HistoryEntry>& history = state.history;
  std::vector<double> heads = history.empty() ? std::vector<double>(static_cast<size_t>(n), 0.0)
                                              : history.back().head_val_accuracy;
  double& train_seconds = state.train_seconds;
  double& eval_seconds = state.eval_seconds;
  meter.reset_peak();
  {
    MemoryLimitGuard limit(meter, config.memory.budget);
    for (int64_t epoch = state.epochs_done; epoch < config.train.epochs; ++epoch) {
      const double lr = scheduled_lr(config.train, config.train.lr, epoch, config.train.epochs);
      for (auto& opt : optimizers) set_learning_rate(*opt, lr);
      for (int64_t i = first; i <= last; ++i) {
        model->chain()->unit(i)->train();
        model->head(i)->train();
      }
      at::Tensor loss_sum = torch::zeros({n}, torch::kDouble);
      int64_t seen = 0;
      Stopwatch epoch_watch;
      run_phase(
          [&](const BatchFn& fn) {
            input->train_epoch(batch, epoch, [&](const at::Tensor& x, const at::Tensor& y) {
              if (x.size(0) >= 2) fn(x, y);  // batch norm needs two samples, as in run_epoch
            });
          },
          [&](const at::Tensor& x, const at::Tensor& y) {
            Stopwatch step_watch;
            at::Tensor h = x;
            for (int64_t i = first; i <= last; ++i) {
              const UnitStepResult r = unit_step(model->chain()->unit(i), model->head(i),
                                                 *optimizers[i - first], h, y);
              loss_sum[i] += r.loss.item<double>() * static_cast<double>(x.size(0));
              h = r.output;
            }
            compute_seconds += step_watch.seconds();
            ++micro_batches;
            seen += x.size(0);
            return h;
          });
      const double epoch_seconds = epoch_watch.seconds();
      train_seconds += epoch_seconds;
      comm.all_reduce_sum(loss_sum);
      Stopwatch eval_watch;
      heads = evaluate_split(Split::kVal);
      eval_seconds += eval_watch.seconds();

      HistoryEntry entry;
      entry.epoch = epoch + 1;
      entry.train_loss = loss_sum[n - 1].item<double>() / std::max<int64_t>(1, seen);
      entry.val_accuracy = *std::max_element(heads.begin(), heads.end());
      entry.seconds = train_seconds;
      entry.epoch_seconds = epoch_seconds;
      entry.eval_seconds = eval_watch.seconds();
      entry.lr = lr;
      entry.batch_size = batch;
      entry.head_val_accuracy = heads;
      history.push_back(entry);
      log_line("pipeline rank " + std::to_string(rank) + " epoch " + std::to_string(epoch + 1) +
               ": best head val accuracy " + std::to_string(entry.val_accuracy) + ", " +
               std::to_string(epoch_seconds) + " s (computing " +
               std::to_string(compute_seconds) + " s so far)");
      state.epochs_done = epoch + 1;
      save_checkpoint(state.epochs_done);
    }
  }
  const int64_t peak = meter.peak();
  Stopwatch test_watch;
  const std::vector<double> test_heads = evaluate_split(Split::kTest);
  eval_seconds += test_watch.seconds();

  // Every rank takes the trained units of every stage, so rank 0 can export the network.
  for (int64_t k = 0; k < ranks; ++k)
    for (int64_t i = placement.stages[k].first_unit; i <= placement.stages[k].last_unit; ++i) {
      broadcast_module(comm, *model->chain()->unit(i), static_cast<int>(k));
      broadcast_module(comm, *model->head(i), static_cast<int>(k));
    }

  std::vector<std::optional<double>> head_accuracy(heads.begin(), heads.end());
  const ExitChoice exit = config.method == "local"
                              ? ExitChoice{n - 1, heads.back(), n - 1, heads.back()}
                              : select_exit(head_accuracy, config.neuroflux.exit_tolerance);
  report.train_seconds = train_seconds;
  report.eval_seconds = eval_seconds;
  report.history = history;
  report.peak_memory_bytes = peak;
  report.final.val_accuracy = exit.val_accuracy;
  report.final.test_accuracy = test_heads[exit.unit];
  report.final.exit_unit = exit.unit;
  report.final.params = config.method == "local" ? report.full_model_params
                                                 : parameter_count(exit_network(model, exit.unit));
  report.extra["head_val_accuracy"] = heads;
  report.extra["head_test_accuracy"] = test_heads;
  report.extra["pipeline"] = placement.to_json();
  report.extra["profile_seconds"] = profile.seconds;

  // Per stage: predicted against measured seconds per micro-batch (compute only, and the wall
  // time of an epoch divided by its micro-batches, which includes waiting for neighbours).
  const std::vector<int64_t> peaks = comm.all_gather(peak);
  const std::vector<int64_t> compute_us =
      comm.all_gather(static_cast<int64_t>(1e6 * compute_seconds / std::max<int64_t>(1, micro_batches)));
  const std::vector<int64_t> wall_us =
      comm.all_gather(static_cast<int64_t>(1e6 * train_seconds / std::max<int64_t>(1, micro_batches)));
  for (int64_t k = 0; k < ranks; ++k) {
    BlockReport b;
    b.first_unit = placement.stages[k].first_unit;
    b.last_unit = placement.stages[k].last_unit;
    b.batch_size = batch;
    b.epochs = config.train.epochs;
    b.predicted_peak_bytes = static_cast<int64_t>(placement.stages[k].predicted_peak_bytes);
    b.peak_memory_bytes = peaks[k];
    b.seconds = train_seconds;
    b.extra = {{"rank", k},
               {"predicted_seconds_per_batch", placement.stages[k].predicted_seconds},
               {"measured_seconds_per_batch", static_cast<double>(compute_us[k]) / 1e6},
               {"wall_seconds_per_batch", static_cast<double>(wall_us[k]) / 1e6}};
    report.blocks.push_back(b);
  }
  add_rank_fields(report, comm, config.distributed.mode);

  if (!setup_.out_dir.empty() && setup_.write_results) {
    if (config.method == "local") {
      save_full_chain(chain, config, setup_.out_dir + "/model.pt");
    } else {
      const auto exported = exit_network(chain, exit.unit, model->head(exit.unit));
      save_exported(exported, describe_export(config, *chain, exit.unit, profile.units[exit.unit].head),
                    setup_.out_dir + "/model.pt");
      save_full_chain(chain, config, setup_.out_dir + "/full_model.pt");
    }
    report.write(setup_.out_dir);
  }
  return report;
}

}  // namespace neuroflux
