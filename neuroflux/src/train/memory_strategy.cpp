#include "neuroflux/train/memory_strategy.h"

#include <c10/util/Exception.h>

#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/util/size_format.h"
#include "neuroflux/util/progress.h"

namespace neuroflux {

using nlohmann::json;

namespace {

// Parameter-sized tensors the optimizer keeps per parameter on the device: none when
// memory.optimizer_state is "host". (train.fused_update frees each gradient during backward: the
// costs are then measured with each stage's gradients inside its backward transient, not as
// state; see measure_chain_costs.)
int64_t optimizer_slots(const Config& config) {
  if (config.memory.optimizer_state == "host") return 0;
  if (config.train.optimizer == "adam") return 2;
  return config.train.momentum > 0 ? 1 : 0;
}

}  // namespace

MemoryStrategy::MemoryStrategy(UnitChain model, const Config& config, c10::Device device)
    : model_(std::move(model)),
      strategy_(config.memory.strategy),
      budget_(config.memory.budget),
      optimizer_slots_(optimizer_slots(config)),
      fused_update_(config.train.fused_update),
      device_(device) {
  if (strategy_ == "offload") store_ = std::make_shared<OffloadStore>(device, config.memory.offload_dir);
}

void MemoryStrategy::use_batch(int64_t batch) {
  batch_ = batch;
  if (plain()) return;
  auto found = choices_.find(batch);
  if (found == choices_.end()) {
    ChainCosts costs =
        measure_chain_costs(model_, batch, device_, optimizer_slots_, 2, fused_update_);
    std::optional<CheckpointSchedule> schedule;
    if (strategy_ == "checkpoint_sqrt") {
      schedule = sqrt_schedule(costs);
    } else {
      schedule = optimal_schedule(costs, *budget_ - costs.static_bytes(), strategy_ == "offload");
    }
    if (!schedule && !MemoryMeter::of(device_).limit()) {
      // Measuring what a batch needs (to name the smallest budget that would work): run the
      // least-memory schedule, and do not keep it for this batch.
      chain_.emplace(model_, least_memory_schedule(costs, strategy_ == "offload"), store_);
      return;
    }
    if (!schedule) {
      TORCH_CHECK_WITH(OutOfMemoryError, false, "memory.strategy ", strategy_,
                       ": no schedule fits batch ", batch, " into ", format_size(*budget_),
                       " (the parameters, gradients, optimizer state and batch take ",
                       format_size(costs.static_bytes()), ")");
    }
    found = choices_.emplace(batch, Choice{std::move(costs), std::move(*schedule)}).first;
  }
  chain_.emplace(model_, found->second.schedule, store_);
}

bool MemoryStrategy::fall_back_to_least_memory() {
  const auto found = choices_.find(batch_);
  if (plain() || found == choices_.end()) return false;
  CheckpointSchedule least = least_memory_schedule(found->second.costs, strategy_ == "offload");
  if (least.describe() == found->second.schedule.describe()) return false;
  log_line("memory.strategy " + strategy_ + " at batch " + std::to_string(batch_) + ": " +
           found->second.schedule.describe() + " missed its predicted fit; using the " +
           "least-memory schedule " + least.describe());
  found->second.schedule = std::move(least);
  chain_.emplace(model_, found->second.schedule, store_);
  return true;
}

at::Tensor MemoryStrategy::forward(const at::Tensor& x) {
  if (plain()) return model_->forward(x);
  TORCH_CHECK(chain_.has_value(), "MemoryStrategy: use_batch() before forward()");
  return chain_->forward(x);
}

void MemoryStrategy::reset_statistics() {
  if (store_) store_->reset_stats();
}

std::optional<int64_t> MemoryStrategy::predicted_peak_bytes() const {
  const auto found = choices_.find(batch_);
  if (plain() || found == choices_.end()) return std::nullopt;
  return found->second.costs.static_bytes() + found->second.schedule.predicted_activation_peak;
}

json MemoryStrategy::describe() const {
  json j = {{"strategy", strategy_}};
  const auto found = choices_.find(batch_);
  if (plain() || found == choices_.end()) return j;
  const Choice& choice = found->second;
  j["batch_size"] = batch_;
  j["schedule"] = choice.schedule.to_json();
  j["recomputed_stages_per_step"] = choice.schedule.recomputed_stages();
  j["predicted_peak_bytes"] = *predicted_peak_bytes();
  j["costs"] = choice.costs.to_json();
  if (store_) {
    const OffloadStats& stats = store_->stats();
    j["offloaded_bytes"] = stats.offloaded_bytes;
    j["offload_transfers"] = stats.transfers;
    j["transfer_wait_seconds"] = stats.wait_seconds;
  }
  return j;
}

}  // namespace neuroflux
