#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

#include "neuroflux/cache/activation_cache.h"
#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/util/epoch_seed.h"

namespace neuroflux {

// A one-slot queue between a producer thread and next(). The producer waits for the slot to be
// empty before it gathers, so at most two batches are alive beyond what the caller holds: the
// one being trained on and the one being prefetched. Both are tracked by the MemoryMeter (the
// producer runs outside any UntrackedScope): they are the device side of the budget.
struct CacheBatchLoader::State {
  std::shared_ptr<const ActivationCache> cache;
  at::Tensor labels;  ///< CPU, one entry per sample
  at::Tensor order;   ///< int64 permutation of [0, count)
  int64_t batch_size = 0;
  int64_t num_batches = 0;

  std::mutex mutex;
  std::condition_variable changed;
  bool full = false;           ///< the slot holds a batch
  at::Tensor slot_inputs;
  at::Tensor slot_labels;
  bool producer_done = false;  ///< no more batches will come (all produced, or error)
  std::exception_ptr error;    ///< what stopped the producer, rethrown by next()
  bool stop = false;           ///< the loader is being destroyed
  std::thread producer;

  void produce();
};

void CacheBatchLoader::State::produce() {
  at::NoGradGuard no_grad;  // grad mode is thread-local; a new thread starts with it on
  try {
    for (int64_t b = 0; b < num_batches; ++b) {
      {
        std::unique_lock<std::mutex> lock(mutex);
        changed.wait(lock, [&] { return stop || !full; });
        if (stop) return;
      }
      const int64_t start = b * batch_size;
      const at::Tensor index = order.narrow(0, start, std::min(batch_size, order.size(0) - start));
      at::Tensor inputs = cache->gather(index);
      at::Tensor targets = labels.index_select(0, index);
      {
        std::lock_guard<std::mutex> lock(mutex);
        if (stop) return;
        slot_inputs = std::move(inputs);
        slot_labels = std::move(targets);
        full = true;
      }
      changed.notify_all();
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex);
    error = std::current_exception();
  }
  {
    std::lock_guard<std::mutex> lock(mutex);
    producer_done = true;
  }
  changed.notify_all();
}

CacheBatchLoader::CacheBatchLoader(std::shared_ptr<const ActivationCache> cache, at::Tensor labels,
                                   int64_t batch_size, bool shuffle, uint64_t seed, int64_t epoch)
    : state_(std::make_unique<State>()) {
  TORCH_CHECK(cache != nullptr, "CacheBatchLoader: no cache");
  TORCH_CHECK(batch_size > 0, "CacheBatchLoader: batch_size must be positive, got ", batch_size);
  TORCH_CHECK(labels.defined() && labels.dim() >= 1 && labels.size(0) == cache->count(),
              "CacheBatchLoader: labels must have one entry per cached sample (", cache->count(),
              "), got shape ", labels.defined() ? labels.sizes() : at::IntArrayRef());
  State& s = *state_;
  const int64_t count = cache->count();
  {
    // Index bookkeeping belongs with the data set, not the device working set.
    UntrackedScope untracked;
    s.labels = labels.to(at::kCPU);
    if (shuffle) {
      at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(
          epoch_seed(seed, epoch, EpochStream::kShuffle));
      s.order = at::randperm(count, generator, at::TensorOptions().dtype(at::kLong));
    } else {
      s.order = at::arange(count, at::TensorOptions().dtype(at::kLong));
    }
  }
  s.cache = std::move(cache);
  s.batch_size = batch_size;
  s.num_batches = (count + batch_size - 1) / batch_size;  // the last partial batch included
  s.producer = std::thread([&s] { s.produce(); });
}

CacheBatchLoader::~CacheBatchLoader() {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->stop = true;
  }
  state_->changed.notify_all();
  // The producer checks `stop` before and after each gather, so this waits one batch at most.
  if (state_->producer.joinable()) state_->producer.join();
}

int64_t CacheBatchLoader::num_batches() const { return state_->num_batches; }

bool CacheBatchLoader::next(at::Tensor& inputs, at::Tensor& labels) {
  State& s = *state_;
  std::unique_lock<std::mutex> lock(s.mutex);
  s.changed.wait(lock, [&] { return s.full || s.producer_done; });
  if (s.full) {
    inputs = std::move(s.slot_inputs);
    labels = std::move(s.slot_labels);
    s.slot_inputs = at::Tensor();
    s.slot_labels = at::Tensor();
    s.full = false;
    lock.unlock();
    s.changed.notify_all();
    return true;
  }
  if (s.error) std::rethrow_exception(s.error);
  return false;
}

}  // namespace neuroflux
