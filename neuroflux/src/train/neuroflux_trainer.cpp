#include "neuroflux/train/neuroflux_trainer.h"

#include <torch/torch.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "neuroflux/distributed/data_parallel.h"
#include "neuroflux/errors.h"
#include "neuroflux/exit/exit_selector.h"
#include "neuroflux/exit/exported_model.h"
#include "neuroflux/memory_meter.h"
#include "neuroflux/plan/planner.h"
#include "neuroflux/profile/profiler.h"
#include "neuroflux/size_format.h"
#include "neuroflux/train/block_trainer.h"
#include "neuroflux/train/checkpoint.h"
#include "neuroflux/train/device_residency.h"
#include "neuroflux/train/evaluate.h"
#include "neuroflux/util/atomic_file.h"
#include "neuroflux/util/progress.h"
#include "cache/owned_directory.h"
#include "train/training_loop.h"

namespace neuroflux {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

using Caches = SplitCaches;
constexpr Split kSplits[] = {Split::kTrain, Split::kVal, Split::kTest};

/// FNV-1a: the key that ties a cache to the config, plan and weights that produced it.
uint64_t fnv1a(const void* data, size_t bytes, uint64_t hash = 1469598103934665603ULL) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) hash = (hash ^ p[i]) * 1099511628211ULL;
  return hash;
}

uint64_t cache_key(const Config& config, const Plan& plan, LocalModel& model, int64_t last_unit) {
  const std::string text = resumable_config(config).dump() + plan.to_json().dump() +
                           std::to_string(last_unit);
  uint64_t hash = fnv1a(text.data(), text.size());
  for (int64_t i = 0; i <= last_unit; ++i)
    for (const auto& p : model->chain()->unit(i)->parameters()) {
      const at::Tensor c = p.detach().to(at::kCPU).contiguous();
      hash = fnv1a(c.data_ptr(), c.numel() * c.element_size(), hash);
    }
  return hash;
}

/// Where a run keeps its disk caches: OUT/cache, or a directory of its own inside the
/// neuroflux.cache.dir a user named (named after OUT, so a resumed run finds its caches again;
/// one per rank), or one in the system's temporary directory for a run without OUT.
std::string run_cache_directory(const std::string& user_dir, const std::string& out,
                                const Communicator* comm) {
  if (user_dir.empty() && !out.empty()) return out + "/cache";  // OUT is already per rank
  const std::string rank = comm ? "-rank-" + std::to_string(comm->rank()) : "";
  const std::string owner = out.empty() ? "pid-" + std::to_string(::getpid())
                                        : fs::absolute(out).lexically_normal().string();
  char tag[17];
  std::snprintf(tag, sizeof tag, "%016llx",
                static_cast<unsigned long long>(fnv1a(owner.data(), owner.size())));
  const fs::path parent = user_dir.empty() ? fs::temp_directory_path() : fs::path(user_dir);
  return (parent / ("neuroflux-" + std::string(tag) + rank)).string();
}

void for_block_modules(LocalModel& model, int64_t first, int64_t last,
                       const std::function<void(torch::nn::Module&)>& fn) {
  for (int64_t i = first; i <= last; ++i) {
    fn(*model->chain()->unit(i));
    if (i + 1 < model->size()) fn(*model->head(i));
  }
  if (last + 1 == model->size()) fn(*model->chain()->classifier());
}

struct RunState {
  int64_t blocks_done = 0;
  bool stopped_early = false;
  int64_t blocks_without_gain = 0;  ///< consecutive blocks that did not raise the best head
  std::vector<BlockReport> blocks;
  std::vector<HistoryEntry> history;
  std::vector<std::optional<double>> head_accuracy;
  double train_seconds = 0, eval_seconds = 0, cache_seconds = 0;
  int64_t peak = 0;

  json to_json() const {
    json heads = json::array();
    for (const auto& h : head_accuracy) heads.push_back(h ? json(*h) : json(nullptr));
    return {{"blocks_done", blocks_done}, {"stopped_early", stopped_early},
            {"blocks_without_gain", blocks_without_gain},
            {"blocks", blocks_to_json(blocks)}, {"history", history_to_json(history)},
            {"head_accuracy", heads}, {"train_seconds", train_seconds},
            {"eval_seconds", eval_seconds}, {"cache_seconds", cache_seconds}, {"peak", peak}};
  }
};

RunState state_from_json(const json& j) {
  RunState s;
  s.blocks_done = j.at("blocks_done");
  s.stopped_early = j.at("stopped_early");
  s.blocks_without_gain = j.value("blocks_without_gain", 0);
  s.blocks = blocks_from_json(j.at("blocks"));
  s.history = history_from_json(j.at("history"));
  for (const auto& h : j.at("head_accuracy"))
    s.head_accuracy.push_back(h.is_null() ? std::nullopt : std::optional<double>(h.get<double>()));
  s.train_seconds = j.at("train_seconds");
  s.eval_seconds = j.at("eval_seconds");
  s.cache_seconds = j.at("cache_seconds");
  s.peak = j.at("peak");
  return s;
}

}  // namespace

NeuroFluxTrainer::NeuroFluxTrainer(TrainingSetup setup) : setup_(std::move(setup)) {}

std::pair<Profile, Plan> NeuroFluxTrainer::make_plan(UnitChain chain,
                                                     const data::DataSplits& data) {
  const Config& config = setup_.config;
  chain->to(setup_.device);
  Profiler profiler(profiler_options(config), setup_.device);
  Stopwatch watch;
  const std::vector<AuxHeadSpec> heads = choose_head_specs(config, chain, profiler);
  LocalModel model(chain, heads);
  model->to(setup_.device);
  Profile profile = profiler.profile(model);
  profile.seconds = watch.seconds();
  const Planner planner(profile, planner_inputs(config, data.train.size(), data.val.size(),
                                                data.test.size()));
  return {profile, planner.plan()};
}

Report NeuroFluxTrainer::fit(UnitChain chain, const data::DataSplits& data,
                             std::optional<Plan> given_plan) {
  const Config& config = setup_.config;
  const c10::Device device = setup_.device;
  const std::string& out = setup_.out_dir;
  MemoryMeter& meter = MemoryMeter::of(device);
  const int64_t n = chain->size();

  Checkpointer checkpointer(out.empty() ? "" : out + "/checkpoint");
  const std::optional<json> saved = setup_.resume && !out.empty() ? checkpointer.peek()
                                                                  : std::nullopt;
  if (saved) check_resumable(saved->at("state"), config, checkpointer.dir());
  Communicator* comm = setup_.comm.get();
  if (comm && setup_.resume)
    check_same_checkpoint(
        *comm, saved ? saved->at("state").at("run").at("blocks_done").get<int64_t>() : -1,
        checkpointer.dir());
  // Data parallel: each rank trains on, and caches, a fixed shard of the training split.
  const data::DataSplits sharded = comm ? train_shard(data, comm->rank(), comm->world_size())
                                        : data::DataSplits{};
  const data::DataSplits& local = comm ? sharded : data;

  double profile_seconds = 0;
  Plan plan;
  if (saved) {
    plan = Plan::from_json(saved->at("state").at("plan"));
    profile_seconds = saved->at("state").value("profile_seconds", 0.0);
  } else if (given_plan) {
    plan = *given_plan;
  } else if (!config.neuroflux.plan_file.empty()) {
    try {
      plan = Plan::from_json(nlohmann::json::parse(read_file(config.neuroflux.plan_file)));
    } catch (const nlohmann::json::exception& e) {
      throw ConfigError("/neuroflux/plan: " + config.neuroflux.plan_file + " is not a plan (" +
                        e.what() + ")");
    }
  } else {
    auto [profile, made] = make_plan(chain, local);
    plan = made;
    profile_seconds = profile.seconds;
    // Measured times differ between ranks and so may their plans: all follow rank 0's.
    if (comm) plan = Plan::from_json(json::parse(comm->broadcast_string(plan.to_json().dump(), 0)));
    if (!out.empty() && setup_.write_results) {
      write_file_atomic(out + "/profile.json", profile.to_json().dump(2) + "\n");
      write_file_atomic(out + "/plan.json", plan.to_json().dump(2) + "\n");
    }
    log_line("plan (" + std::to_string(profile_seconds) + " s to profile):\n" + plan.table());
  }

  if (static_cast<int64_t>(plan.heads.size()) != n || plan.blocks.empty() ||
      plan.blocks.back().last_unit != n - 1)
    throw ConfigError("/neuroflux/plan: the plan covers " + std::to_string(plan.heads.size()) +
                      " units, the model has " + std::to_string(n));
  LocalModel model(chain, plan.heads);
  model->to(device);
  RunState state;
  state.head_accuracy.assign(static_cast<size_t>(n), std::nullopt);
  state.train_seconds = profile_seconds;
  if (saved) {
    checkpointer.load(*model, nullptr);
    state = state_from_json(saved->at("state").at("run"));
    log_line("resuming after block " + std::to_string(state.blocks_done - 1));
  } else if (comm) {
    broadcast_module(*comm, *model);  // heads were built after rank-dependent profiling
  }
  move_to_host(*model, device);
  Report report = make_report_skeleton(config, *chain, data, device);

  const std::string cache_dir = run_cache_directory(config.neuroflux.cache_dir, out, comm);
  CacheOptions cache_options;
  cache_options.where = config.neuroflux.cache_where;
  cache_options.dtype = config.neuroflux.cache_dtype == "float16" ? at::kHalf : at::kFloat;
  if (cache_options.where == "disk") create_owned_directory(cache_dir);
  auto cache_path = [&](int64_t block, Split split) {
    return cache_dir + "/block" + std::to_string(block) + "-" + split_name(split) + ".nfcache";
  };

  auto write_caches = [&](BlockInput& input, int64_t k, int64_t first, int64_t last,
                          int64_t batch) {
    return write_block_caches(model, input, first, last, batch, cache_options,
                              [&](Split split) { return cache_path(k, split); },
                              cache_key(config, plan, model, last));
  };

  // The input of block k (> 0): its predecessor's caches, opened from disk when they are there
  // and valid, else recomputed from the trained earlier units (after a resume, or a bad file).
  Caches caches;
  auto ensure_caches = [&](int64_t k) {
    if (caches[0]) return;
    const int64_t last = plan.blocks[k - 1].last_unit;
    const uint64_t key = cache_key(config, plan, model, last);
    if (cache_options.where == "disk") {
      try {
        for (Split split : kSplits) {
          caches[static_cast<int>(split)] =
              ActivationCache::open(cache_path(k - 1, split), model->chain()->output_shape(last),
                                    split_of(local, split).size(), key);
        }
        return;
      } catch (const DataError& e) {
        log_line(std::string("cache not usable, recomputing it: ") + e.what());
        caches = Caches{};
      }
    }
    Stopwatch watch;
    for_block_modules(model, 0, last, [&](torch::nn::Module& m) { move_to_device(m, device); });
    auto input = recompute_input(local, config, model, last + 1, device);
    caches = write_caches(*input, k - 1, last + 1, last, plan.blocks[k - 1].cache_batch_size);
    for_block_modules(model, 0, last, [&](torch::nn::Module& m) { move_to_host(m, device); });
    state.cache_seconds += watch.seconds();
    state.train_seconds += watch.seconds();
  };

  const auto blocks = static_cast<int64_t>(plan.blocks.size());
  for (int64_t k = state.blocks_done; k < blocks && !state.stopped_early; ++k) {
    const PlannedBlock& pb = plan.blocks[k];
    std::unique_ptr<BlockInput> input;
    if (k == 0) {
      input = data_input(local, config, device);
    } else {
      ensure_caches(k);
      input = cache_input(caches[0], caches[1], caches[2], local, config, device);
    }
    for_block_modules(model, pb.first_unit, pb.last_unit,
                      [&](torch::nn::Module& m) { move_to_device(m, device); });
    log_line("block " + std::to_string(k) + ": " + format_size(meter.current()) +
             " live on the device before training");
    meter.reset_peak();
    BlockTrainingOptions options;
    options.block_index = k;
    options.first_unit = pb.first_unit;
    options.last_unit = pb.last_unit;
    options.batch_size = pb.batch_size;
    options.unit_modes = pb.unit_modes;
    options.eval_batch_size = pb.cache_batch_size;
    options.max_epochs = pb.epochs;
    options.lr = pb.lr;
    options.patience = config.neuroflux.block_patience;
    options.min_delta = config.neuroflux.block_min_delta;
    options.seconds_before = state.train_seconds;
    options.comm = setup_.comm;
    options.bucket_bytes = config.distributed.bucket_bytes;
    BlockOutcome outcome;
    {
      MemoryLimitGuard limit(meter, config.memory.budget);
      outcome = train_block(model, *input, options, config);
    }
    const int64_t training_peak = meter.peak();
    state.train_seconds += outcome.train_seconds;
    state.eval_seconds += outcome.eval_seconds;
    for (auto& h : outcome.history) state.history.push_back(h);

    double best_before = -1;
    for (int64_t i = 0; i < pb.first_unit; ++i)
      if (state.head_accuracy[i]) best_before = std::max(best_before, *state.head_accuracy[i]);
    double best_now = best_before;
    for (int64_t i = pb.first_unit; i <= pb.last_unit; ++i) {
      state.head_accuracy[i] = outcome.head_val_accuracy[i - pb.first_unit];
      best_now = std::max(best_now, *state.head_accuracy[i]);
    }
    const bool more = k + 1 < blocks;
    ProgressiveExit progressive(config.neuroflux.exit_tolerance, config.neuroflux.exit_patience,
                                state.blocks_without_gain);
    const bool no_more_gain = progressive.after_block(best_before, best_now);
    state.blocks_without_gain = progressive.blocks_without_gain();
    if (config.neuroflux.progressive_exit && more && no_more_gain) {
      state.stopped_early = true;
      log_line("progressive exit: block " + std::to_string(k) + " raised the best head by " +
               std::to_string(best_now - best_before) + ", the " +
               std::to_string(state.blocks_without_gain) + " block(s) in a row within tolerance " +
               std::to_string(config.neuroflux.exit_tolerance) + "; units " +
               std::to_string(pb.last_unit + 1) + "-" + std::to_string(n - 1) + " stay untrained");
    }

    BlockReport block;
    block.first_unit = pb.first_unit;
    block.last_unit = pb.last_unit;
    block.batch_size = pb.batch_size;
    block.epochs = outcome.epochs_run;
    block.predicted_peak_bytes = pb.predicted_peak_bytes;
    block.seconds = outcome.train_seconds;
    double cache_seconds = 0;
    int64_t cache_peak = 0;
    if (more && !state.stopped_early) {
      log_line("block " + std::to_string(k) + ": " + format_size(meter.current()) +
               " live before the caching pass");
      Stopwatch watch;
      meter.reset_peak();
      {
        MemoryLimitGuard limit(meter, config.memory.budget);
        caches = write_caches(*input, k, pb.first_unit, pb.last_unit, pb.cache_batch_size);
      }
      cache_peak = meter.peak();
      cache_seconds = watch.seconds();
      for (const auto& c : caches) block.cache_bytes += c->bytes();
      state.cache_seconds += cache_seconds;
      state.train_seconds += cache_seconds;
    }
    input.reset();
    block.peak_memory_bytes = std::max(training_peak, cache_peak);
    block.extra = {{"epochs_planned", pb.epochs},
                   {"best_epoch", outcome.best_epoch},
                   {"lr", pb.lr},
                   {"training_peak_bytes", training_peak},
                   {"cache_pass_peak_bytes", cache_peak},
                   {"cache_seconds", cache_seconds},
                   {"eval_seconds", outcome.eval_seconds},
                   {"predicted_seconds", pb.predicted_seconds},
                   {"head_val_accuracy", outcome.head_val_accuracy}};
    if (!pb.unit_modes.empty()) block.extra["unit_modes"] = pb.unit_modes;
    state.blocks.push_back(block);
    state.peak = std::max(state.peak, block.peak_memory_bytes);
    for_block_modules(model, pb.first_unit, pb.last_unit,
                      [&](torch::nn::Module& m) { move_to_host(m, device); });
    state.blocks_done = k + 1;
    if (!out.empty()) {
      json s = {{"run", state.to_json()}, {"plan", plan.to_json()},
                {"profile_seconds", profile_seconds}, {"config", resumable_config(config)}};
      checkpointer.save(*model, nullptr, s, k + 1);
    }
  }

  // Early exit: the shallowest head within exit_tolerance of the best, exported with its units.
  const ExitChoice exit = select_exit(state.head_accuracy, config.neuroflux.exit_tolerance);
  exported_ = exit_network(chain, exit.unit, model->head(exit.unit));
  move_to_device(*exported_, device);
  Stopwatch test_watch;
  exported_->eval();
  const EvalResult test = evaluate([&](const at::Tensor& x) { return exported_->forward(x); },
                                   data.test, plan.blocks.front().cache_batch_size, device);
  state.eval_seconds += test_watch.seconds();

  std::vector<int64_t> untrained;
  for (int64_t i = 0; i < n; ++i)
    if (!state.head_accuracy[i]) untrained.push_back(i);

  report.peak_memory_bytes = state.peak;
  report.train_seconds = state.train_seconds;
  report.eval_seconds = state.eval_seconds;
  report.blocks = state.blocks;
  report.history = state.history;
  report.final.val_accuracy = exit.val_accuracy;
  report.final.test_accuracy = test.accuracy;
  report.final.params = parameter_count(exported_);
  report.final.exit_unit = exit.unit;
  json heads = json::array();
  for (const auto& h : state.head_accuracy) heads.push_back(h ? json(*h) : json(nullptr));
  report.extra["head_val_accuracy"] = heads;
  report.extra["best_unit"] = exit.best_unit;
  report.extra["best_val_accuracy"] = exit.best_val_accuracy;
  report.extra["untrained_units"] = untrained;
  report.extra["stopped_early"] = state.stopped_early;
  report.extra["profile_seconds"] = profile_seconds;
  report.extra["cache_seconds"] = state.cache_seconds;
  report.extra["plan"] = plan.to_json();
  if (comm) add_rank_fields(report, *comm, config.distributed.mode);

  if (!out.empty() && setup_.write_results) {
    const ExportDescription description =
        describe_export(config, *chain, exit.unit, plan.heads[exit.unit]);
    save_exported(exported_, description, out + "/model.pt");
    save_full_chain(chain, config, out + "/full_model.pt");
    report.write(out);
  }
  // The run is complete: its caches have served. Only the directory it made goes.
  if (cache_options.where == "disk") remove_owned_directory(cache_dir);
  return report;
}

}  // namespace neuroflux
