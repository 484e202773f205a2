// NeuroFlux: profile, plan, then train block after block, each on the previous block's cached
// outputs, stop early where the heads stop improving, and export the shallowest good exit.
#pragma once

#include <optional>

#include "neuroflux/data/data_splits.h"
#include "neuroflux/local/local_model.h"
#include "neuroflux/models/unit_chain.h"
#include "neuroflux/plan/plan.h"
#include "neuroflux/profile/profile.h"
#include "neuroflux/report/report.h"
#include "neuroflux/train/training_setup.h"
#include "neuroflux/util/phase_peaks.h"

namespace neuroflux {

struct NeuroFluxRunState;

class NeuroFluxTrainer {
 public:
  explicit NeuroFluxTrainer(TrainingSetup setup);

  /// Plans (unless a plan is given) and trains. Writes profile.json, plan.json, report.json,
  /// history.csv, model.pt (the exported early exit) and full_model.pt to out_dir.
  Report fit(UnitChain chain, const data::DataSplits& data,
             std::optional<Plan> plan = std::nullopt);

  /// Profiles and plans without training (what `neuroflux plan` prints); with
  /// `trace_allocations` the profile also says what each unit step's peak is made of.
  std::pair<Profile, Plan> make_plan(UnitChain chain, const data::DataSplits& data,
                                     bool trace_allocations = false);

  /// The exported model of the last fit().
  torch::nn::Sequential exported() const { return exported_; }

 private:
  /// The plan to train by (given, read from neuroflux.plan, or profiled and planned here) and
  /// the seconds spent profiling.
  std::pair<Plan, double> choose_plan(UnitChain chain, const data::DataSplits& data,
                                      std::optional<Plan> given);
  /// Chooses the early exit, tests it, and writes the results.
  Report export_exit(UnitChain chain, LocalModel& model, const data::DataSplits& data,
                     NeuroFluxRunState& state, const Plan& plan, double profile_seconds);

  TrainingSetup setup_;
  torch::nn::Sequential exported_{nullptr};
  /// Phases measured before the run state exists (profiling, resuming); fit() merges them in.
  PhasePeaks early_phases_;
};

}  // namespace neuroflux
