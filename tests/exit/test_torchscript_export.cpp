// model.pt is TorchScript: plain torch::jit::load runs it and gets the C++ network's logits, for
// every zoo family, head family, bitmap activations, row-centric blocks and grouped modules; and
// load_exported still rebuilds the C++ network from it (and from files of the old format).
#include <catch2/catch.hpp>
#include <torch/script.h>
#include <torch/torch.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "neuroflux/exit/exported_model.h"
#include "neuroflux/local/aux_head.h"
#include "neuroflux/models/model_zoo.h"
#include "neuroflux/models/sequential_stage.h"
#include "neuroflux/models/unit_groups.h"
#include "neuroflux/util/atomic_file.h"

using namespace neuroflux;

namespace {

std::string temp_file(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / "neuroflux-tsexport-test";
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

/// Batch norm as after training: running statistics and affine parameters far from the
/// initial identity, so an export that normalised with the batch's statistics (train mode) or
/// forgot the running ones would give other logits.
void perturb_batch_norm(torch::nn::Module& network) {
  torch::NoGradGuard no_grad;
  for (const auto& m : network.modules()) {
    if (auto* bn = m->as<torch::nn::BatchNorm2d>()) {
      if (bn->running_mean.defined()) bn->running_mean.normal_(0.0, 0.5);
      if (bn->running_var.defined()) bn->running_var.uniform_(0.5, 2.0);
      if (bn->weight.defined()) bn->weight.uniform_(0.5, 1.5);
      if (bn->bias.defined()) bn->bias.normal_(0.0, 0.2);
    }
  }
}

/// Every method of every module of `module`, printed: what the file runs.
std::string all_graphs(const torch::jit::Module& module) {
  std::string text;
  for (const auto& m : module.modules())
    for (const auto& method : m.get_methods()) text += method.graph()->toString();
  return text;
}

bool close_enough(const at::Tensor& a, const at::Tensor& b) {
  return a.sizes() == b.sizes() && torch::allclose(a, b, /*rtol=*/1e-4, /*atol=*/1e-5);
}

/// Saves `network` with `description`, then checks that plain TorchScript runs it to the same
/// logits as the C++ network in eval mode, and that load_exported rebuilds it.
void check_export(torch::nn::Sequential network, const ExportDescription& description,
                  const std::string& name) {
  INFO(name);
  perturb_batch_norm(*network);
  network->eval();
  std::vector<int64_t> shape{3};
  shape.insert(shape.end(), description.input_shape.begin(), description.input_shape.end());
  torch::manual_seed(5);
  const at::Tensor x = torch::randn(shape);
  at::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    expected = network->forward(x);
  }
  const std::string path = temp_file(name + ".pt");
  save_exported(network, description, path);

  torch::jit::ExtraFilesMap extra{{kExportDescriptionFile, ""}};
  torch::jit::Module scripted = torch::jit::load(path, torch::kCPU, extra);
  REQUIRE(scripted.find_method("forward").has_value());
  CHECK_FALSE(scripted.is_training());
  CHECK(ExportDescription::from_json(nlohmann::json::parse(extra[kExportDescriptionFile]))
            .to_json() == description.to_json());
  // Only aten (and prim) operators: no neuroflux:: custom op a plain LibTorch lacks.
  const std::string graphs = all_graphs(scripted);
  CHECK(graphs.find("neuroflux::") == std::string::npos);
  CHECK(graphs.find("aten::") != std::string::npos);

  torch::NoGradGuard no_grad;
  const at::Tensor logits = scripted.forward({x}).toTensor();
  CHECK(logits.size(1) == description.num_classes);
  CHECK(close_enough(logits, expected));
  // Any batch size (nothing of the example batch is baked in).
  CHECK(close_enough(scripted.forward({x.narrow(0, 1, 1)}).toTensor(), expected.narrow(0, 1, 1)));
  // Inference only: train() changes nothing (batch norm keeps its running statistics).
  scripted.train();
  CHECK(close_enough(scripted.forward({x}).toTensor(), expected));
  // The parameter and buffer names are the C++ network's.
  int64_t tensors = 0;
  for (const auto& p : scripted.named_parameters()) {
    CHECK(network->named_parameters().contains(p.name));
    ++tensors;
  }
  for (const auto& b : scripted.named_buffers()) {
    CHECK(network->named_buffers().contains(b.name));
    ++tensors;
  }
  CHECK(tensors == static_cast<int64_t>(network->named_parameters().size() +
                                        network->named_buffers().size()));

  ExportDescription loaded_description;
  torch::nn::Sequential loaded = load_exported(path, &loaded_description);
  loaded->eval();
  CHECK(loaded_description.to_json() == description.to_json());
  CHECK(close_enough(loaded->forward(x), expected));
  std::filesystem::remove(path);
}

Config config_of(const ModelConfig& model) {
  Config config;
  config.model = model;
  return config;
}

/// Units 0..exit of `model` at input `shape` with `head` (the classifier when head.classifier).
void check_model(const ModelConfig& model, const std::vector<int64_t>& shape, int64_t exit_unit,
                 const AuxHeadSpec& head, const std::string& name,
                 const std::vector<int64_t>& modules = {}) {
  UnitChain chain = build_model(model, shape, 5);
  if (!modules.empty()) chain = group_units(chain, modules);
  const int64_t unit = exit_unit < 0 ? chain->size() + exit_unit : exit_unit;
  torch::nn::Sequential head_network =
      head.classifier ? chain->classifier()
                      : make_aux_head(chain->output_shape(unit), head, 5,
                                      following_units(*chain, unit));
  check_export(exit_network(chain, unit, head_network),
               describe_export(config_of(model), *chain, unit, head), name);
}

ModelConfig zoo(const std::string& name, double width) {
  ModelConfig model;
  model.name = name;
  model.width = width;
  return model;
}

const AuxHeadSpec kClassifier{1, 0, true};

}  // namespace

TEST_CASE("every zoo family exports as TorchScript with the C++ network's logits",
          "[exit][unit]") {
  check_model(zoo("simplecnn", 0.25), {1, 16, 16}, -1, kClassifier, "simplecnn");
  check_model(zoo("vgg11", 0.0625), {3, 16, 16}, -1, kClassifier, "vgg11");
  check_model(zoo("resnet18", 0.125), {3, 16, 16}, -1, kClassifier, "resnet18");
  check_model(zoo("mobilenetv2", 0.25), {3, 16, 16}, -1, kClassifier, "mobilenetv2");
  // Early exits part of the way down: a projection shortcut, an inverted residual with its add.
  check_model(zoo("resnet18", 0.125), {3, 16, 16}, 3, AuxHeadSpec{2, 16, false},
              "resnet18-exit3");
  check_model(zoo("mobilenetv2", 0.25), {3, 16, 16}, 3, AuxHeadSpec{1, 16, false},
              "mobilenetv2-exit3");
}

TEST_CASE("every head family exports as TorchScript", "[exit][unit]") {
  const ModelConfig model = zoo("simplecnn", 0.25);
  // conv heads as the adaptive rule picks them (pre-pooled) and as fixed ones (no pool, with
  // and without batch norm), and DGL's deep heads.
  check_model(model, {1, 16, 16}, 0, AuxHeadSpec{4, 16, false}, "head-conv-pool4");
  check_model(model, {1, 16, 16}, 1, AuxHeadSpec{2, 24, false}, "head-conv-pool2");
  check_model(model, {1, 16, 16}, 1, AuxHeadSpec{1, 32, false, /*batch_norm=*/false},
              "head-conv-no-bn");
  check_model(model, {1, 16, 16}, 2, AuxHeadSpec{1, 16, false, true, "deep"}, "head-deep");
  check_model(zoo("resnet18", 0.125), {3, 16, 16}, 2, AuxHeadSpec{1, 16, false, true, "deep"},
              "resnet18-head-deep");
  // AugLocal's copies of the next units: residual, inverted-residual and conv blocks, and the
  // plain pool + linear head of depth 0; a grouped chain's copies are its built units.
  AuxHeadSpec copies{1, 1, false, true, "copies"};
  copies.depth = 3;
  check_model(zoo("resnet18", 0.125), {3, 16, 16}, 1, copies, "resnet18-head-copies");
  check_model(zoo("mobilenetv2", 0.25), {3, 16, 16}, 2, copies, "mobilenetv2-head-copies");
  check_model(zoo("vgg11", 0.0625), {3, 16, 16}, 0, copies, "vgg11-head-copies");
  check_model(zoo("resnet18", 0.125), {3, 16, 16}, 0, copies, "resnet18-modules-head-copies",
              {3, 2, 2, 2});
  copies.depth = 0;
  check_model(zoo("resnet18", 0.125), {3, 16, 16}, 7, copies, "resnet18-head-copies-0");
}

TEST_CASE("exit ensembles export as TorchScript and reload", "[exit][unit]") {
  // Unit k's head averaged with unit k + 1's (an aux head, or the classifier at the last unit):
  // a residual block and an inverted residual run inside the ensemble's tail.
  const auto check_ensemble = [](const ModelConfig& model, const std::vector<int64_t>& shape,
                                 int64_t unit, const AuxHeadSpec& head, const AuxHeadSpec& next,
                                 const std::string& name) {
    UnitChain chain = build_model(model, shape, 5);
    const auto head_of = [&](int64_t i, const AuxHeadSpec& spec) {
      return spec.classifier ? chain->classifier()
                             : make_aux_head(chain->output_shape(i), spec, 5);
    };
    ExportDescription description = describe_export(config_of(model), *chain, unit, head);
    description.next_head = next;
    check_export(ensemble_exit_network(chain, unit, head_of(unit, head), head_of(unit + 1, next)),
                 description, name);
  };
  check_ensemble(zoo("resnet18", 0.125), {3, 16, 16}, 2, AuxHeadSpec{1, 16, false, true, "deep"},
                 AuxHeadSpec{2, 16, false}, "resnet18-ensemble");
  check_ensemble(zoo("mobilenetv2", 0.25), {3, 16, 16}, 3, AuxHeadSpec{1, 16, false},
                 AuxHeadSpec{1, 16, false, true, "deep"}, "mobilenetv2-ensemble");
  UnitChain vgg = build_model(zoo("vgg11", 0.0625), {3, 16, 16}, 5);
  check_ensemble(zoo("vgg11", 0.0625), {3, 16, 16}, vgg->size() - 2, AuxHeadSpec{1, 16, false},
                 kClassifier, "vgg11-ensemble-classifier");
}

TEST_CASE("bitmap activations, row-centric blocks and grouped modules export as plain layers",
          "[exit][unit]") {
  ModelConfig bitmap = zoo("vgg11", 0.0625);
  bitmap.activations = "bitmap";
  check_model(bitmap, {3, 16, 16}, 3, AuxHeadSpec{1, 16, false}, "vgg11-bitmap");
  ModelConfig bitmap_cnn = zoo("simplecnn", 0.25);
  bitmap_cnn.activations = "bitmap";
  check_model(bitmap_cnn, {1, 16, 16}, -1, kClassifier, "simplecnn-bitmap");

  // Row-centric: ResNet's blocks run their main path on the conv2d_rows operator in C++.
  ModelConfig rows = zoo("resnet18", 0.125);
  rows.batch_norm = false;
  rows.row_centric.enabled = true;
  rows.row_centric.stripes = 4;
  check_model(rows, {3, 16, 16}, -1, kClassifier, "resnet18-row-centric");
  ModelConfig rows_cnn = zoo("simplecnn", 0.25);
  rows_cnn.batch_norm = false;
  rows_cnn.row_centric.enabled = true;
  check_model(rows_cnn, {1, 16, 16}, 2, AuxHeadSpec{1, 16, false, false}, "simplecnn-row-centric");

  // Modules of several units (neuroflux.module_units): nested Sequentials.
  check_model(zoo("resnet18", 0.125), {3, 16, 16}, 1, AuxHeadSpec{1, 16, false},
              "resnet18-modules", {1, 2, 2, 2, 2});
}

TEST_CASE("the full chain exports as TorchScript", "[exit][unit]") {
  const ModelConfig model = zoo("simplecnn", 0.25);
  UnitChain chain = build_model(model, {1, 16, 16}, 5);
  perturb_batch_norm(*chain);
  chain->eval();
  const std::string path = temp_file("full.pt");
  save_full_chain(chain, config_of(model), path);
  const at::Tensor x = torch::randn({2, 1, 16, 16});
  torch::NoGradGuard no_grad;
  torch::jit::Module scripted = torch::jit::load(path);
  CHECK(close_enough(scripted.forward({x}).toTensor(), chain->forward(x)));
  std::filesystem::remove(path);
}

TEST_CASE("a model.pt of the weights-archive format still loads", "[exit][unit]") {
  // What save_exported wrote before the TorchScript format: the Sequential's weights and the
  // description as an archive entry.
  const ModelConfig model = zoo("simplecnn", 0.25);
  UnitChain chain = build_model(model, {1, 16, 16}, 5);
  torch::nn::Sequential network =
      exit_network(chain, 1, make_aux_head(chain->output_shape(1), AuxHeadSpec{2, 16}, 5));
  perturb_batch_norm(*network);
  network->eval();
  ExportDescription description = describe_export(config_of(model), *chain, 1, AuxHeadSpec{2, 16});
  nlohmann::json old_json = description.to_json();
  old_json["format"] = 1;
  torch::serialize::OutputArchive archive;
  network->save(archive);
  archive.write("neuroflux_export", c10::IValue(old_json.dump()));
  const std::string path = temp_file("format1.pt");
  write_archive_atomic(path, archive);

  ExportDescription loaded_description;
  torch::nn::Sequential loaded = load_exported(path, &loaded_description);
  loaded->eval();
  CHECK(loaded_description.to_json() == description.to_json());
  const at::Tensor x = torch::randn({2, 1, 16, 16});
  torch::NoGradGuard no_grad;
  CHECK(close_enough(loaded->forward(x), network->forward(x)));
  std::filesystem::remove(path);
}

TEST_CASE("a layer without a TorchScript translation leaves model.pt without a forward",
          "[exit][unit]") {
  // A user's own module (here a Functional) has no translation: the weights and the description
  // are still written, loadable by torch::jit::load, and the file says it has no forward.
  torch::nn::Sequential network;
  network->push_back("unit0", SequentialStage(torch::nn::Conv2d(1, 2, 3),
                                              torch::nn::Functional(torch::relu)));
  network->push_back("head",
                     SequentialStage(torch::nn::Flatten(), torch::nn::Linear(2 * 4 * 4, 3)));
  ExportDescription description;
  description.input_shape = {1, 6, 6};
  description.num_classes = 3;
  description.model_config = {{"name", "user"}};
  const std::string path = temp_file("user.pt");
  save_exported(network, description, path);
  torch::jit::Module scripted = torch::jit::load(path);
  CHECK_FALSE(scripted.find_method("forward").has_value());
  CHECK(scripted.named_parameters().size() == 4);
  std::filesystem::remove(path);
}

TEST_CASE("a file that is not an export is a DataError naming it", "[exit][unit]") {
  const std::string path = temp_file("not-a-model.pt");
  write_file_atomic(path, "not a zip archive");
  CHECK_THROWS_WITH(load_exported(path, nullptr), Catch::Contains("not-a-model.pt"));
  // A TorchScript module that is not NeuroFlux's: no description inside.
  torch::jit::Module other("Other");
  other.register_parameter("w", torch::ones({2}), false);
  other.save(path);
  CHECK_THROWS_WITH(load_exported(path, nullptr), Catch::Contains("no description inside"));
  std::filesystem::remove(path);
}

TEST_CASE("a model.pt with a flipped bit in a weight is a DataError naming it", "[exit][unit]") {
  const ModelConfig model = zoo("simplecnn", 0.25);
  UnitChain chain = build_model(model, {1, 16, 16}, 5);
  torch::nn::Sequential network =
      exit_network(chain, 1, make_aux_head(chain->output_shape(1), AuxHeadSpec{2, 16}, 5));
  // A value the file holds once in a row, so the test knows where a weight's bytes lie.
  const float marker = 1234.5f;
  at::Tensor bias;
  for (auto& p : network->named_parameters())
    if (p.key().find("bias") != std::string::npos) bias = p.value();
  REQUIRE(bias.defined());
  {
    torch::NoGradGuard no_grad;
    bias.fill_(marker);
  }
  ExportDescription description = describe_export(config_of(model), *chain, 1, AuxHeadSpec{2, 16});
  const std::string path = temp_file("flipped.pt");
  save_exported(network, description, path);
  REQUIRE_NOTHROW(load_exported(path, nullptr));

  std::string bytes = read_file(path);
  std::string pattern(bias.numel() * sizeof(float), '\0');
  for (int64_t i = 0; i < bias.numel(); ++i)
    std::memcpy(&pattern[i * sizeof(float)], &marker, sizeof(float));
  const size_t at = bytes.find(pattern);
  REQUIRE(at != std::string::npos);
  bytes[at] = static_cast<char>(bytes[at] ^ 1);  // the lowest mantissa bit: a plausible weight
  write_file_atomic(path, bytes);
  // LibTorch alone reads the damaged file without a word; load_exported must not.
  REQUIRE_NOTHROW(torch::jit::load(path));
  CHECK_THROWS_WITH(load_exported(path, nullptr),
                    Catch::Contains("flipped.pt") && Catch::Contains("CRC-32 mismatch"));
  std::filesystem::remove(path);
}
