// A synthetic image classification set: each class is a distinct pattern (oriented stripes of a
// class-specific frequency and a class-specific colour mix) under noise and random shifts, so a
// small CNN can learn it but not trivially. Deterministic by seed; any channels / size.
#pragma once

#include <cstdint>

#include "neuroflux/data/image_set.h"

namespace neuroflux::data {

struct SyntheticOptions {
  int64_t samples = 1024;
  int64_t channels = 3;
  int64_t image_size = 32;
  int64_t num_classes = 10;
  uint64_t seed = 0;
  double noise = 0.5;   ///< standard deviation of the additive Gaussian noise
};

ImageSet make_synthetic(const SyntheticOptions& options);

}  // namespace neuroflux::data
