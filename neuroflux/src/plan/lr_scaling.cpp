#include "neuroflux/plan/lr_scaling.h"

#include <algorithm>

namespace neuroflux {

double scaled_lr(double base_lr, int64_t batch, int64_t reference_batch) {
  const double ratio =
      static_cast<double>(batch) / static_cast<double>(std::max<int64_t>(1, reference_batch));
  return base_lr * std::min(4.0, ratio);
}

int64_t lr_reference_batch(const TrainConfig& config) {
  if (config.lr_reference_batch > 0) return config.lr_reference_batch;
  return config.batch_size > 0 ? config.batch_size : 128;
}

double run_lr(const TrainConfig& config, int64_t batch) {
  return scaled_lr(config.lr, batch, lr_reference_batch(config));
}

}  // namespace neuroflux
