#include "neuroflux/exit/exported_model.h"

#include <torch/csrc/jit/serialization/export.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <map>
#include <optional>
#include <sstream>

#include "exit/torchscript_module.h"
#include "neuroflux/exit/exit_ensemble.h"
#include "neuroflux/models/model_zoo.h"
#include "neuroflux/models/sequential_stage.h"
#include "neuroflux/models/unit_groups.h"
#include "neuroflux/util/atomic_file.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/util/progress.h"
#include "util/zip_entries.h"

namespace neuroflux {

using nlohmann::json;

namespace {
/// Where files written before the TorchScript format (format 1: a weights archive) keep the
/// description: a string entry of the archive.
constexpr const char* kLegacyDescriptionKey = "neuroflux_export";
}

json ExportDescription::to_json() const {
  return {{"format", 2},
          {"exit_unit", exit_unit},
          {"head", head.to_json()},
          {"model", model_config},
          {"input_shape", input_shape},
          {"num_classes", num_classes},
          {"module_sizes", module_sizes},
          {"next_head", next_head ? next_head->to_json() : json(nullptr)}};
}

ExportDescription ExportDescription::from_json(const json& j) {
  ExportDescription d;
  d.exit_unit = j.at("exit_unit");
  d.head = AuxHeadSpec::from_json(j.at("head"));
  d.model_config = j.at("model");
  d.input_shape = j.at("input_shape").get<std::vector<int64_t>>();
  d.num_classes = j.at("num_classes");
  if (j.contains("module_sizes")) d.module_sizes = j.at("module_sizes").get<std::vector<int64_t>>();
  if (j.contains("next_head") && !j.at("next_head").is_null())
    d.next_head = AuxHeadSpec::from_json(j.at("next_head"));
  return d;
}

torch::nn::Sequential exit_network(UnitChain& chain, int64_t exit_unit, torch::nn::Sequential head) {
  torch::nn::Sequential network;
  for (int64_t i = 0; i <= exit_unit; ++i)
    network->push_back("unit" + std::to_string(i), as_stage(chain->unit(i)));
  network->push_back("head", as_stage(head));
  return network;
}

torch::nn::Sequential exit_network(LocalModel& model, int64_t unit) {
  return exit_network(model->chain(), unit, model->head(unit));
}

torch::nn::Sequential ensemble_exit_network(UnitChain& chain, int64_t unit,
                                            torch::nn::Sequential head,
                                            torch::nn::Sequential next_head) {
  TORCH_CHECK(unit + 1 < chain->size(), "exit ensemble: unit ", unit, " is the last");
  torch::nn::Sequential network;
  for (int64_t i = 0; i <= unit; ++i)
    network->push_back("unit" + std::to_string(i), as_stage(chain->unit(i)));
  network->push_back("head", EnsembleTail(head, chain->unit(unit + 1), next_head));
  return network;
}

torch::nn::Sequential ensemble_exit_network(LocalModel& model, int64_t unit) {
  return ensemble_exit_network(model->chain(), unit, model->head(unit), model->head(unit + 1));
}

int64_t parameter_count(const torch::nn::Sequential& network) {
  int64_t n = 0;
  for (const auto& p : network->parameters()) n += p.numel();
  return n;
}

ExportDescription describe_export(const Config& config, UnitChainImpl& chain, int64_t exit_unit,
                                  const AuxHeadSpec& head) {
  ExportDescription d;
  d.exit_unit = exit_unit;
  d.head = head;
  d.model_config = config.to_json()["model"];
  d.model_config["num_classes"] = chain.num_classes();
  d.model_config["in_channels"] = chain.input_shape()[0];
  d.input_shape = chain.input_shape();
  d.num_classes = chain.num_classes();
  d.module_sizes = chain.module_sizes();
  return d;
}

void save_full_chain(UnitChain& chain, const Config& config, const std::string& path) {
  save_exported(exit_network(chain, chain->size() - 1, chain->classifier()),
                describe_export(config, *chain, chain->size() - 1, AuxHeadSpec{1, 0, true}), path);
}

void save_exported(const torch::nn::Sequential& network, const ExportDescription& description,
                   const std::string& path) {
  // TorchScript, so the file runs without NeuroFlux (torch::jit::load, torch.jit.load); the
  // forward is written out per layer rather than traced (exit/torchscript_module.h says why).
  // The description rides along as an extra file of the archive.
  const ScriptedNetwork scripted = script_network(*network);
  if (!scripted.unsupported.empty()) {
    log_line(path + ": written without a TorchScript forward (" + scripted.unsupported +
             "): it holds the weights and the description only");
  }
  const torch::jit::ExtraFilesMap extra{{kExportDescriptionFile, description.to_json().dump()}};
  write_atomic_bytes(path, [&](const ByteSink& sink) {
    torch::jit::ExportModule(scripted.module, sink, extra);
  });
}

namespace {

/// Copies the TorchScript module's parameters and buffers into `network`'s of the same names;
/// both sets of names must be the same and every shape must match.
void load_weights(torch::nn::Module& network, const torch::jit::Module& scripted,
                  const std::string& path) {
  std::map<std::string, at::Tensor> saved;
  for (const auto& p : scripted.named_parameters(/*recurse=*/true)) saved.emplace(p.name, p.value);
  for (const auto& b : scripted.named_buffers(/*recurse=*/true)) saved.emplace(b.name, b.value);
  const std::string mismatch = path + ": weights do not match the described network: ";
  torch::NoGradGuard no_grad;
  const auto copy = [&](const std::string& name, at::Tensor& target) {
    const auto it = saved.find(name);
    if (it == saved.end()) throw DataError(mismatch + "no tensor " + name + " in the file");
    if (it->second.sizes() != target.sizes()) {
      std::ostringstream msg;
      msg << mismatch << name << " is " << it->second.sizes() << " in the file, "
          << target.sizes() << " in the network";
      throw DataError(msg.str());
    }
    target.copy_(it->second);
    saved.erase(it);
  };
  for (auto& p : network.named_parameters(/*recurse=*/true)) copy(p.key(), p.value());
  for (auto& b : network.named_buffers(/*recurse=*/true)) copy(b.key(), b.value());
  if (!saved.empty())
    throw DataError(mismatch + "the file's " + saved.begin()->first + " has no place in it");
}

}  // namespace

torch::nn::Sequential load_exported(const std::string& path, ExportDescription* description) {
  // Format 2 is a TorchScript module with the description as an extra file. Format 1 (earlier
  // versions) was a torch::serialize archive, which torch::jit::load reads too (an archive is a
  // module without methods) but without that extra file; its description is an entry inside.
  torch::jit::ExtraFilesMap extra{{kExportDescriptionFile, ""}};
  torch::jit::Module scripted;
  std::optional<torch::serialize::InputArchive> legacy;
  ExportDescription d;
  json description_json;
  // LibTorch reads one copy of the bytes, checked first against the zip's CRC-32s: its own
  // reader does not check them, and a flipped bit in a weight would load without a word.
  const std::string bytes = read_file(path);
  check_zip_entries(path, bytes);
  try {
    std::istringstream stream(bytes);
    scripted = torch::jit::load(stream, torch::Device(torch::kCPU), extra);
    std::string text = extra[kExportDescriptionFile];
    if (text.empty()) {
      legacy.emplace();
      legacy->load_from(bytes.data(), bytes.size());
      c10::IValue value;
      if (!legacy->try_read(kLegacyDescriptionKey, value))
        throw DataError(path + ": not a NeuroFlux exported model (no description inside)");
      text = value.toStringRef();
    }
    description_json = json::parse(text);
    d = ExportDescription::from_json(description_json);
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw DataError(path + ": cannot read the exported model: " + e.what_without_backtrace());
  } catch (const json::exception& e) {
    throw DataError(path + ": damaged export description: " + e.what());
  } catch (const std::exception& e) {  // torch::jit::ErrorReport: damaged TorchScript code
    throw DataError(path + ": cannot read the exported model: " + e.what());
  }
  json model_json = d.model_config;
  json wrapper = {{"model", model_json}};
  const Config config = Config::from_json(wrapper);
  UnitChain built = build_model(config.model, d.input_shape, d.num_classes);
  UnitChain chain = built;
  try {
    const json& j = description_json;
    if (!j.contains("module_sizes") && j.value("module_units", 1) != 1)
      d.module_sizes = module_sizes(j.at("module_units").get<int64_t>(), *built);
    if (!d.module_sizes.empty()) chain = group_units(built, d.module_sizes);
  } catch (const std::exception& e) {
    throw DataError(path + ": the described modules do not fit the model: " + e.what());
  }
  const auto head_of = [&](int64_t unit, const AuxHeadSpec& spec) {
    return spec.classifier ? chain->classifier()
                           : make_aux_head(chain->output_shape(unit), spec, d.num_classes,
                                           following_units(*chain, unit));
  };
  if (d.next_head && d.exit_unit + 1 >= chain->size())
    throw DataError(path + ": an exit ensemble past the model's last unit");
  torch::nn::Sequential network =
      d.next_head ? ensemble_exit_network(chain, d.exit_unit, head_of(d.exit_unit, d.head),
                                          head_of(d.exit_unit + 1, *d.next_head))
                  : exit_network(chain, d.exit_unit, head_of(d.exit_unit, d.head));
  try {
    if (legacy)
      network->load(*legacy);
    else
      load_weights(*network, scripted, path);
  } catch (const c10::Error& e) {
    throw DataError(path + ": weights do not match the described network: " +
                    e.what_without_backtrace());
  }
  if (description != nullptr) *description = d;
  return network;
}

}  // namespace neuroflux
