#include "neuroflux/cache/run_caches.h"

#include <torch/torch.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "cache/owned_directory.h"
#include "util/checksum.h"
#include "neuroflux/distributed/communicator.h"
#include "neuroflux/memory/measured_phase.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/util/progress.h"

namespace neuroflux {

namespace fs = std::filesystem;

namespace {

constexpr Split kSplits[] = {Split::kTrain, Split::kVal, Split::kTest};

}  // namespace

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

uint64_t cache_key(const std::string& producer, LocalModel& model, int64_t last_unit) {
  const std::string text = producer + std::to_string(last_unit);
  uint64_t hash = fnv1a(text.data(), text.size());
  for (int64_t i = 0; i <= last_unit; ++i)
    for (const auto& p : model->chain()->unit(i)->parameters()) {
      const at::Tensor c = p.detach().to(at::kCPU).contiguous();
      hash = fnv1a(c.data_ptr(), c.numel() * c.element_size(), hash);
    }
  return hash;
}

RunCaches::RunCaches(const Config& config, const std::string& out, const Communicator* comm,
                     const data::DataSplits& data, std::string producer)
    : config_(config),
      data_(data),
      producer_(std::move(producer)),
      directory_(run_cache_directory(config.neuroflux.cache_dir, out, comm)) {
  options_.where = config.neuroflux.cache_where;
  options_.dtype = config.neuroflux.cache_dtype == "float16" ? at::kHalf : at::kFloat;
  if (options_.where == "disk") create_owned_directory(directory_);
}

std::string RunCaches::path(int64_t block, Split split) const {
  return directory_ + "/block" + std::to_string(block) + "-" + split_name(split) + ".nfcache";
}

void RunCaches::write(LocalModel& model, BlockInput& input, int64_t block, int64_t first,
                      int64_t last, int64_t batch_size) {
  // Forget the previous block's caches first (the input being read still holds them): if the
  // write fails, no caches are left labelled as this block's.
  caches_ = SplitCaches{};
  block_ = -1;
  caches_ = write_block_caches(model, input, first, last, batch_size, options_,
                               [&](Split split) { return path(block, split); },
                               cache_key(producer_, model, last));
  block_ = block;
}

double RunCaches::ensure(LocalModel& model, int64_t block, int64_t last, int64_t batch_size,
                         const c10::Device& device, PhasePeaks& phases) {
  if (block_ == block && caches_[0]) return 0;
  const uint64_t key = cache_key(producer_, model, last);
  if (options_.where == "disk") {
    try {
      for (Split split : kSplits) {
        caches_[static_cast<int>(split)] =
            ActivationCache::open(path(block, split), model->chain()->output_shape(last),
                                  split_of(data_, split).size(), key);
      }
      block_ = block;
      return 0;
    } catch (const DataError& e) {
      log_line(std::string("cache not usable, recomputing it: ") + e.what());
      caches_ = SplitCaches{};
    }
  }
  Stopwatch watch;
  // Units 0..last on the device at once: the budget has to hold them, as it held each block.
  const MeasuredPhase recompute(MemoryMeter::of(device), phases, "cache_recompute",
                                config_.memory.budget);
  move_units_to_device(model, 0, last, device);
  auto recomputed = recompute_input(data_, config_, model, last + 1, device);
  write(model, *recomputed, block, last + 1, last, batch_size);
  move_units_to_host(model, 0, last, device);
  return watch.seconds();
}

std::unique_ptr<BlockInput> RunCaches::input(const c10::Device& device) const {
  return cache_input(caches_[0], caches_[1], caches_[2], data_, config_, device);
}

int64_t RunCaches::bytes() const {
  int64_t total = 0;
  for (const auto& c : caches_)
    if (c) total += c->bytes();
  return total;
}

void RunCaches::remove() {
  caches_ = SplitCaches{};
  block_ = -1;
  if (options_.where == "disk") remove_owned_directory(directory_);
}

}  // namespace neuroflux
