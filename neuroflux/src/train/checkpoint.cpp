#include "neuroflux/train/checkpoint.h"

#include <torch/serialize.h>

#include <filesystem>

#include "neuroflux/util/errors.h"
#include "neuroflux/util/atomic_file.h"

namespace neuroflux {

namespace fs = std::filesystem;
using nlohmann::json;

Checkpointer::Checkpointer(std::string dir) : dir_(std::move(dir)) {
  // A run killed while saving left a temporary here; no later save would ever replace it.
  if (!dir_.empty()) remove_stale_temporaries(dir_);
}

void Checkpointer::save(const torch::nn::Module& module, const torch::optim::Optimizer* optimizer,
                        const json& state, int64_t step) {
  // The writes create dir_ (a full disk there is a DataError naming it).
  const std::optional<json> previous = peek();
  const std::string tag = "step-" + std::to_string(step);
  const std::string model_file = tag + "-model.pt";
  const std::string optim_file = tag + "-optimizer.pt";
  torch::serialize::OutputArchive model_archive;
  module.save(model_archive);
  write_archive_atomic(dir_ + "/" + model_file, model_archive);
  if (optimizer != nullptr) {
    torch::serialize::OutputArchive optim_archive;
    optimizer->save(optim_archive);
    write_archive_atomic(dir_ + "/" + optim_file, optim_archive);
  }
  json record = {{"step", step},
                 {"model_file", model_file},
                 {"optimizer_file", optimizer ? json(optim_file) : json(nullptr)},
                 {"state", state}};
  write_file_atomic(dir_ + "/state.json", record.dump(2));
  if (previous && previous->value("step", int64_t{-1}) != step) {
    std::error_code ignored;
    fs::remove(dir_ + "/" + previous->value("model_file", std::string()), ignored);
    if (previous->at("optimizer_file").is_string())
      fs::remove(dir_ + "/" + previous->at("optimizer_file").get<std::string>(), ignored);
  }
}

std::optional<json> Checkpointer::peek() const {
  const std::string path = dir_ + "/state.json";
  if (!fs::exists(path)) return std::nullopt;
  try {
    return json::parse(read_file(path));
  } catch (const json::exception& e) {
    throw DataError(path + ": corrupt checkpoint state (" + e.what() + ")");
  }
}

std::optional<json> Checkpointer::load(torch::nn::Module& module,
                                       torch::optim::Optimizer* optimizer) const {
  std::optional<json> record = peek();
  if (!record) return std::nullopt;
  const std::string model_path = dir_ + "/" + record->at("model_file").get<std::string>();
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(model_path);
    module.load(archive);
    if (optimizer != nullptr && record->at("optimizer_file").is_string()) {
      torch::serialize::InputArchive optim_archive;
      optim_archive.load_from(dir_ + "/" + record->at("optimizer_file").get<std::string>());
      optimizer->load(optim_archive);
    }
  } catch (const c10::Error& e) {
    throw DataError(model_path + ": cannot load the checkpoint: " + e.what_without_backtrace());
  }
  return record->at("state");
}

}  // namespace neuroflux
