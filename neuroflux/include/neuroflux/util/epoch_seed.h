// The seed of a random stream that belongs to one epoch of a run. Every reader that must see a
// split in the same shuffled order (the data set's block input, the activation cache's loader,
// recomputed inputs) derives it here, so the orders cannot drift apart; a resumed run's epoch e
// gets the stream it got the first time.
#pragma once

#include <cstdint>

namespace neuroflux {

/// Which stream of the epoch: the shuffling order, or the random crops and flips of augmentation.
enum class EpochStream : uint64_t { kShuffle = 29, kAugment = 17 };

constexpr uint64_t epoch_seed(uint64_t run_seed, int64_t epoch, EpochStream stream) {
  return run_seed * 1000003ULL + static_cast<uint64_t>(epoch) + static_cast<uint64_t>(stream);
}

}  // namespace neuroflux
