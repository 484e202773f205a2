// Learning rate against batch size: one rule for every method, so a comparison under a budget
// compares methods, not learning rates.
#pragma once

#include <cstdint>

#include "neuroflux/config/config.h"

namespace neuroflux {

/// Learning rate for a run or block trained at `batch`: linear scaling (Goyal et al. 2017) from
/// the reference batch, capped at 4x so very large late-block batches stay stable.
double scaled_lr(double base_lr, int64_t batch, int64_t reference_batch);

/// The batch train.lr is tuned for: train.lr_reference_batch, else train.batch_size, else 128.
int64_t lr_reference_batch(const TrainConfig& config);

/// train.lr scaled to the batch the run trains at: backprop and local learning at a batch
/// "auto" chose get the same rule as NeuroFlux's blocks, so no baseline runs a batch of 3 at
/// the rate tuned for 128 (measured: vgg11 / Fashion-MNIST diverged to chance that way).
double run_lr(const TrainConfig& config, int64_t batch);

}  // namespace neuroflux
