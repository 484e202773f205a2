#include "train/unit_optimizers.h"

#include <torch/serialize.h>

#include "neuroflux/util/atomic_file.h"

namespace neuroflux {

std::string unit_optimizers_file(int64_t epochs_done) {
  return "step-" + std::to_string(epochs_done) + "-optimizers.pt";
}

void save_unit_optimizers(const UnitOptimizers& optimizers, int64_t first_unit,
                          const std::string& path) {
  torch::serialize::OutputArchive archive;
  for (size_t i = 0; i < optimizers.size(); ++i) {
    torch::serialize::OutputArchive unit_archive;
    optimizers[i]->save(unit_archive);
    archive.write("unit" + std::to_string(first_unit + static_cast<int64_t>(i)), unit_archive);
  }
  write_archive_atomic(path, archive);
}

void load_unit_optimizers(UnitOptimizers& optimizers, int64_t first_unit,
                          torch::serialize::InputArchive& archive) {
  for (size_t i = 0; i < optimizers.size(); ++i) {
    torch::serialize::InputArchive unit_archive;
    archive.read("unit" + std::to_string(first_unit + static_cast<int64_t>(i)), unit_archive);
    optimizers[i]->load(unit_archive);
  }
}

}  // namespace neuroflux
