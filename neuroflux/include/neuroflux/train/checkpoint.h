// Checkpoints a killed run can resume from. Weights and optimizer state go to files named by a
// step number; state.json, written last and atomically, names the files of the newest complete
// checkpoint, so a kill at any moment leaves either the old checkpoint or the new one.
//
// state.json also holds the size and zlib CRC-32 of every file of the checkpoint ("files": name ->
// {"bytes", "crc32"}), checked before LibTorch reads the file: LibTorch does not check a zip
// archive's own CRC-32s, and a damaged archive can make it crash or allocate gigabytes instead of
// failing. Checkpoints written before the checksums existed have no "files" and still load: their
// archives are checked against the CRC-32 the zip stores for each entry instead.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace torch::serialize {
class InputArchive;
}

namespace neuroflux {

class Checkpointer {
 public:
  /// Files live in `dir` (created on save). Temporaries that a killed run left there are removed.
  explicit Checkpointer(std::string dir);

  /// Saves `module` (and `optimizer` when given) plus `state` (a JSON object), tagged `step`;
  /// removes the files of the previous checkpoint afterwards. `files`: files the caller wrote into
  /// dir() for this checkpoint (an optimizer archive of its own), checksummed with the others so
  /// that read_archive() can verify them; the caller removes its old ones.
  void save(const torch::nn::Module& module, const torch::optim::Optimizer* optimizer,
            const nlohmann::json& state, int64_t step, const std::vector<std::string>& files = {});

  /// The newest checkpoint's state, loading weights into `module` (and `optimizer`); nullopt when
  /// there is none. A checkpoint whose files are missing, unreadable, damaged (size or checksum
  /// mismatch) or not archives LibTorch can read is a DataError naming the file.
  std::optional<nlohmann::json> load(torch::nn::Module& module,
                                     torch::optim::Optimizer* optimizer) const;

  /// Reads the newest checkpoint's file `name` (in dir(), one of save()'s `files`) as a torch
  /// archive and calls `read` with it; verified and with errors as load() has them.
  void read_archive(const std::string& name,
                    const std::function<void(torch::serialize::InputArchive& archive)>& read) const;

  /// The newest record without loading weights: "step", "model_file", "optimizer_file", "files"
  /// and "state", each checked to be there and of its type (a DataError naming state.json and the
  /// field otherwise); nullopt when there is no checkpoint.
  std::optional<nlohmann::json> peek() const;

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

}  // namespace neuroflux
