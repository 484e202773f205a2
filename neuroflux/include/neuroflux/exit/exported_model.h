// The exported model file: units 0..exit followed by one head, as a torch::nn::Sequential
// ("unit0", ..., "unitK", "head") saved with its description (which units, which head, the
// model config), so `neuroflux eval` and users can rebuild and reload it.
//
// The file is a TorchScript module (format 2): torch::jit::load in plain LibTorch and
// torch.jit.load in Python give a module whose forward(images) returns the logits, using only
// standard (aten) operators, with the Sequential's parameter and buffer names. The description
// is the archive's extra file kExportDescriptionFile (JSON). Files of format 1 (a weights archive
// with the description inside) still load with load_exported.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/nn/modules/container/sequential.h>

#include <optional>
#include <string>

#include "neuroflux/config/config.h"
#include "neuroflux/local/aux_head.h"
#include "neuroflux/local/local_model.h"
#include "neuroflux/models/unit_chain.h"

namespace neuroflux {

/// The extra file of the TorchScript archive that holds ExportDescription::to_json().
inline constexpr const char* kExportDescriptionFile = "neuroflux_export.json";

struct ExportDescription {
  int64_t exit_unit = 0;
  AuxHeadSpec head;                 ///< classifier = the chain's own classifier
  nlohmann::json model_config;      ///< Config::to_json()["model"]
  std::vector<int64_t> input_shape; ///< per sample (C, H, W)
  int64_t num_classes = 0;
  /// Built units per exported unit (models/unit_groups.h); empty when each is one built unit.
  /// Files written before it existed carry `module_units` instead (0 = per stage).
  std::vector<int64_t> module_sizes;
  /// neuroflux.exit_ensemble: the head of unit exit_unit + 1 averaged with `head`
  /// (exit/exit_ensemble.h); the file then holds units 0..exit_unit + 1. Absent: one head.
  std::optional<AuxHeadSpec> next_head;

  nlohmann::json to_json() const;
  static ExportDescription from_json(const nlohmann::json& json);
};

/// units 0..exit_unit of `chain` then `head`, as one Sequential.
torch::nn::Sequential exit_network(UnitChain& chain, int64_t exit_unit, torch::nn::Sequential head);
/// A local model's early exit at `unit`: its units 0..unit followed by that unit's head.
torch::nn::Sequential exit_network(LocalModel& model, int64_t unit);
/// The exit ensemble at `unit`: units 0..unit, then as "head" an EnsembleTail of unit's head,
/// unit + 1 and its head.
torch::nn::Sequential ensemble_exit_network(UnitChain& chain, int64_t unit,
                                            torch::nn::Sequential head,
                                            torch::nn::Sequential next_head);
torch::nn::Sequential ensemble_exit_network(LocalModel& model, int64_t unit);

/// Writes `network` as TorchScript (in eval mode: batch norm on its running statistics, dropout
/// off) with `description` to `path` atomically. A layer the TorchScript writer does not know (a
/// user's own module) leaves the file without a forward method, which is logged.
void save_exported(const torch::nn::Sequential& network, const ExportDescription& description,
                   const std::string& path);

/// Rebuilds the architecture from the file's description and loads the weights (from either
/// format). A file that is not a NeuroFlux export, or is damaged, is a DataError naming it.
torch::nn::Sequential load_exported(const std::string& path, ExportDescription* description);

int64_t parameter_count(const torch::nn::Sequential& network);

/// The description of units 0..exit_unit of a chain built from `config.model`, with `head`.
ExportDescription describe_export(const Config& config, UnitChainImpl& chain, int64_t exit_unit,
                                  const AuxHeadSpec& head);

/// Saves the whole chain (all units and its classifier) in the export format.
void save_full_chain(UnitChain& chain, const Config& config, const std::string& path);

}  // namespace neuroflux
