#include "neuroflux/train/neuroflux_trainer.h"

#include <torch/torch.h>

#include "neuroflux/cache/run_caches.h"
#include "neuroflux/distributed/data_parallel.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/exit/exit_ensemble.h"
#include "neuroflux/exit/exit_selector.h"
#include "neuroflux/exit/exported_model.h"
#include "neuroflux/memory/device_residency.h"
#include "neuroflux/memory/measured_phase.h"
#include "neuroflux/models/unit_groups.h"
#include "neuroflux/plan/module_choice.h"
#include "neuroflux/plan/planner.h"
#include "neuroflux/profile/profiler.h"
#include "neuroflux/train/evaluate.h"
#include "neuroflux/util/atomic_file.h"
#include "neuroflux/util/progress.h"
#include "train/neuroflux_block_step.h"
#include "train/neuroflux_run_state.h"
#include "train/training_loop.h"

namespace neuroflux {

using nlohmann::json;

namespace {

/// A local model of `chain` with `heads`, its new weights on the host (outside the budget on a
/// CPU run): profiling and training bring one unit or block at a time to the device.
LocalModel built_on_host(UnitChain chain, const std::vector<AuxHeadSpec>& heads,
                         const Config& config) {
  UntrackedScope untracked;
  return LocalModel(std::move(chain), heads, local_loss_spec(config));
}

Plan read_plan_file(const std::string& path) {
  try {
    return Plan::from_json(json::parse(read_file(path)));
  } catch (const json::exception& e) {
    throw ConfigError("/neuroflux/plan: " + path + " is not a plan (" + e.what() + ")");
  }
}

void check_plan_covers(const Plan& plan, int64_t units) {
  if (static_cast<int64_t>(plan.heads.size()) != units || plan.blocks.empty() ||
      plan.blocks.back().last_unit != units - 1)
    throw ConfigError("/neuroflux/plan: the plan covers " + std::to_string(plan.heads.size()) +
                      " units, the model has " + std::to_string(units));
}

/// The exit and its test accuracy, in the report with the run's other results.
void fill_report(Report& report, const NeuroFluxRunState& state, const ExitChoice& exit,
                 const Plan& plan, double profile_seconds) {
  report.train_seconds = state.train_seconds;
  report.eval_seconds = state.eval_seconds;
  report.blocks = state.blocks;
  report.history = state.history;
  report.final.val_accuracy = exit.val_accuracy;
  report.final.exit_unit = exit.unit;
  json heads = json::array();
  for (const auto& h : state.head_accuracy) heads.push_back(h ? json(*h) : json(nullptr));
  report.extra["head_val_accuracy"] = heads;
  report.extra["best_unit"] = exit.best_unit;
  report.extra["best_val_accuracy"] = exit.best_val_accuracy;
  report.extra["untrained_units"] = untrained_units(state.head_accuracy);
  report.extra["stopped_early"] = state.stopped_early;
  report.extra["profile_seconds"] = profile_seconds;
  report.extra["cache_seconds"] = state.cache_seconds;
  report.extra["plan"] = plan.to_json();
}

/// The run's peak is its largest phase's.
void record_peaks(Report& report, const PhasePeaks& peaks) {
  report.phase_peaks = peaks;
  report.peak_memory_bytes = peaks.max();
}

}  // namespace

NeuroFluxTrainer::NeuroFluxTrainer(TrainingSetup setup) : setup_(std::move(setup)) {}

std::pair<Profile, Plan> NeuroFluxTrainer::make_plan(UnitChain chain,
                                                     const data::DataSplits& data,
                                                     bool trace_allocations) {
  const Config& config = setup_.config;
  // The model waits on the host and each unit comes to the device for its own measurement, as
  // in training: the budget holds one unit with its head, never the whole network (nor, with
  // "copies" heads, the several copies of it they add up to). It goes there before the phase
  // starts: a phase's peak begins at what is live when it starts.
  move_to_host(*chain, setup_.device);
  // Under the budget like every phase; a unit's step at a batch the budget refuses is measured
  // in a named unbudgeted probe (Profiler::profile_unit), so the planner still sees it.
  const MeasuredPhase profiling(MemoryMeter::of(setup_.device), early_phases_, "profile",
                                config.memory.budget);
  ProfilerOptions options = profiler_options(config);
  options.trace_allocations = trace_allocations;
  options.host_resident_model = true;
  Profiler profiler(options, setup_.device);
  Stopwatch watch;
  auto profile_of = [&](UnitChain units) {
    const std::vector<AuxHeadSpec> heads = choose_head_specs(config, units, profiler);
    LocalModel model = built_on_host(units, heads, config);
    return profiler.profile(model);
  };
  const PlannerInputs inputs =
      planner_inputs(config, data.train.size(), data.val.size(), data.test.size());
  const bool auto_modules =
      config.neuroflux.module_units == kAutoModules && chain->module_sizes().empty();
  Profile profile{};
  std::vector<int64_t> sizes;
  if (auto_modules) {
    const ModuleChoice choice =
        choose_modules(module_sizes(kStageModules, *chain), inputs,
                       [&](const std::vector<int64_t>& s) { return profile_of(group_units(chain, s)); });
    profile = choice.profile;
    sizes = choice.sizes;
    log_line("modules chosen after " + std::to_string(choice.rounds) + " profile(s)");
  } else {
    profile = profile_of(chain);
  }
  profile.seconds = watch.seconds();
  Plan plan = Planner(profile, inputs).plan();
  plan.module_sizes = sizes;
  return {profile, plan};
}

std::pair<Plan, double> NeuroFluxTrainer::choose_plan(UnitChain chain,
                                                      const data::DataSplits& data,
                                                      std::optional<Plan> given) {
  const Config& config = setup_.config;
  if (given) return {*given, 0.0};
  if (!config.neuroflux.plan_file.empty()) return {read_plan_file(config.neuroflux.plan_file), 0.0};
  auto [profile, plan] = make_plan(chain, data);
  // Measured times differ between ranks and so may their plans: all follow rank 0's.
  if (setup_.comm)
    plan = Plan::from_json(json::parse(setup_.comm->broadcast_string(plan.to_json().dump(), 0)));
  const std::string& out = setup_.out_dir;
  if (!out.empty() && setup_.write_results) {
    write_file_atomic(out + "/profile.json", profile.to_json().dump(2) + "\n");
    write_file_atomic(out + "/plan.json", plan.to_json().dump(2) + "\n");
  }
  log_line("plan (" + std::to_string(profile.seconds) + " s to profile):\n" + plan.table());
  return {plan, profile.seconds};
}

Report NeuroFluxTrainer::fit(UnitChain chain, const data::DataSplits& data,
                             std::optional<Plan> given_plan) {
  const Config& config = setup_.config;
  const c10::Device device = setup_.device;
  Communicator* comm = setup_.comm.get();
  NeuroFluxCheckpoint checkpoint(setup_);
  // Data parallel: each rank trains on, and caches, a fixed shard of the training split.
  const data::DataSplits sharded = comm ? train_shard(data, comm->rank(), comm->world_size())
                                        : data::DataSplits{};
  const data::DataSplits& local = comm ? sharded : data;

  auto [plan, profile_seconds] =
      checkpoint.resuming() ? std::pair{checkpoint.plan(), checkpoint.profile_seconds()}
                            : choose_plan(chain, local, std::move(given_plan));
  // "auto" modules: the plan says how the built units group.
  if (!plan.module_sizes.empty() && chain->module_sizes().empty())
    chain = group_units(chain, plan.module_sizes);
  check_plan_covers(plan, chain->size());
  LocalModel model = built_on_host(chain, plan.heads, config);
  model->to(device);
  NeuroFluxRunState state;
  state.head_accuracy.assign(static_cast<size_t>(chain->size()), std::nullopt);
  state.train_seconds = profile_seconds;
  MemoryMeter& meter = MemoryMeter::of(device);
  if (checkpoint.resuming()) {
    {
      const MeasuredPhase resume(meter, early_phases_, "resume", config.memory.budget);
      state = checkpoint.restore(model);
    }
    log_line("resuming after block " + std::to_string(state.blocks_done - 1));
  } else if (comm) {
    broadcast_module(*comm, *model);  // heads were built after rank-dependent profiling
  }
  move_to_host(*model, device);
  state.phase_peaks.merge(early_phases_);

  RunCaches caches(config, setup_.out_dir, comm, local,
                   resumable_config(config).dump() + plan.to_json().dump());
  BlockRun run{config, device, setup_.comm, local, plan, model, caches, state};
  for (int64_t k = state.blocks_done;
       k < static_cast<int64_t>(plan.blocks.size()) && !state.stopped_early; ++k) {
    run_block(run, k);
    const MeasuredPhase saving(meter, state.phase_peaks, "checkpoint", config.memory.budget);
    checkpoint.save(model, state, plan, profile_seconds);
  }
  Report report = export_exit(chain, model, data, state, plan, profile_seconds);
  caches.remove();  // the run is complete: its caches have served
  return report;
}

Report NeuroFluxTrainer::export_exit(UnitChain chain, LocalModel& model,
                                     const data::DataSplits& data, NeuroFluxRunState& state,
                                     const Plan& plan, double profile_seconds) {
  const Config& config = setup_.config;
  // The shallowest head within exit_tolerance of the best (or, with exit_ensemble, of the
  // heads and the pairs of neighbouring heads), exported with its units.
  const std::vector<std::optional<double>> pairs =
      config.neuroflux.exit_ensemble ? pair_accuracies(state.head_val_log_probs, data.val.labels)
                                     : std::vector<std::optional<double>>{};
  const ExitChoice exit = select_exit(state.head_accuracy, pairs, config.neuroflux.exit_tolerance);
  MemoryMeter& meter = MemoryMeter::of(setup_.device);
  EvalResult test;
  {
    const MeasuredPhase testing(meter, state.phase_peaks, "test", config.memory.budget);
    exported_ = exit.ensemble ? ensemble_exit_network(model, exit.unit)
                              : exit_network(chain, exit.unit, model->head(exit.unit));
    move_to_device(*exported_, setup_.device);
    Stopwatch test_watch;
    exported_->eval();
    test = evaluate([&](const at::Tensor& x) { return exported_->forward(x); }, data.test,
                    plan.blocks.front().cache_batch_size, setup_.device);
    state.eval_seconds += test_watch.seconds();
  }

  Report report = make_report_skeleton(config, *chain, data, setup_.device);
  fill_report(report, state, exit, plan, profile_seconds);
  if (config.neuroflux.exit_ensemble) add_ensemble_fields(report, exit, pairs);
  record_peaks(report, state.phase_peaks);
  report.final.test_accuracy = test.accuracy;
  report.final.params = parameter_count(exported_);
  if (setup_.comm) add_rank_fields(report, *setup_.comm, config.distributed.mode);
  const std::string& out = setup_.out_dir;
  if (!out.empty() && setup_.write_results) {
    {
      const MeasuredPhase exporting(meter, state.phase_peaks, "export", config.memory.budget);
      ExportDescription description =
          describe_export(config, *chain, exit.unit, plan.heads[exit.unit]);
      if (exit.ensemble) description.next_head = plan.heads[exit.unit + 1];
      save_exported(exported_, description, out + "/model.pt");
      save_full_chain(chain, config, out + "/full_model.pt");
    }
    record_peaks(report, state.phase_peaks);
    report.write(out);
  }
  return report;
}

}  // namespace neuroflux
