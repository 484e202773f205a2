// `neuroflux eval --model FILE --config FILE`: accuracy and inference throughput of an exported
// model, and of the full model when one is next to it.
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "config_args.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/exit/exported_model.h"
#include "neuroflux/train/evaluate.h"
#include "neuroflux/train/run.h"
#include "neuroflux/util/atomic_file.h"
#include "neuroflux/util/progress.h"

namespace neuroflux::cli {
namespace {

struct Measured {
  double accuracy = 0, images_per_second = 0;
  int64_t params = 0;
};

Measured measure(torch::nn::Sequential network, const data::ImageSet& test, int64_t batch,
                 const c10::Device& device) {
  network->to(device);
  network->eval();
  Measured m;
  m.params = parameter_count(network);
  Stopwatch watch;
  m.accuracy = evaluate([&](const at::Tensor& x) { return network->forward(x); }, test, batch,
                        device)
                   .accuracy;
  m.images_per_second = static_cast<double>(test.size()) / watch.seconds();
  return m;
}

/// The first `batch` test images and the network's logits for them, as a dict {"inputs",
/// "logits"} that torch.load reads in Python: what a deployment of model.pt is checked against.
void save_outputs(torch::nn::Sequential network, const data::ImageSet& test, int64_t batch,
                  const c10::Device& device, const std::string& path) {
  torch::NoGradGuard no_grad;
  network->eval();
  // clone(): a view would save the whole test set's storage.
  const at::Tensor inputs = test.images.narrow(0, 0, std::min(batch, test.size())).clone();
  const at::Tensor logits = network->forward(inputs.to(device)).to(torch::kCPU);
  c10::Dict<std::string, at::Tensor> outputs;
  outputs.insert("inputs", inputs);
  outputs.insert("logits", logits);
  const std::vector<char> bytes = torch::pickle_save(outputs);
  write_file_atomic(path, std::string(bytes.begin(), bytes.end()));
  std::printf("saved %lld inputs and their logits to %s\n",
              static_cast<long long>(inputs.size(0)), path.c_str());
}

}  // namespace

int eval_command(const Args& args) {
  cxxopts::Options options("neuroflux eval",
                           "Evaluate an exported model (model.pt of a run) on the test set.");
  add_config_options(options);
  options.add_options()("m,model", "exported model file", cxxopts::value<std::string>())(
      "full", "also evaluate this full-model export (default: full_model.pt beside --model)",
      cxxopts::value<std::string>())("batch", "inference batch size",
                                     cxxopts::value<int64_t>()->default_value("256"))(
      "save-outputs",
      "write the first batch of test images and the exported model's logits for them to FILE "
      "(torch.load-able dict: inputs, logits), to check a deployment of the model against",
      cxxopts::value<std::string>());
  const auto parsed = parse_args(options, args);
  if (parsed.count("help") != 0) {
    const std::vector<Example> examples = {
        {"the model `neuroflux train --config configs/quickstart.json` exported",
         "neuroflux eval --config configs/quickstart.json --model runs/quickstart/model.pt"},
        {"a NeuroFlux early exit against the full model saved beside it",
         "neuroflux eval --config configs/vgg11-fmnist.json --model runs/vgg11-fmnist/model.pt "
         "--batch 512"}};
    std::cout << help_text(options, examples) << std::endl;
    return 0;
  }
  if (parsed.count("model") == 0) throw ConfigError("--model FILE is required");
  const Config config = load_config(parsed);
  configure_threads(config.threads);
  const c10::Device device = parse_device(config.device);
  const data::DataSplits data = data::load_splits(config.data, static_cast<uint64_t>(config.seed),
                                                  data::run_data_cache_dir(config));
  const int64_t batch = parsed["batch"].as<int64_t>();

  ExportDescription description;
  auto exported = load_exported(parsed["model"].as<std::string>(), &description);
  const Measured e = measure(exported, data.test, batch, device);
  std::printf("exported (units 0-%lld + %s): test accuracy %.4f, %lld params, %.0f images/s\n",
              static_cast<long long>(description.exit_unit),
              description.head.classifier ? "classifier" : "aux head", e.accuracy,
              static_cast<long long>(e.params), e.images_per_second);
  if (parsed.count("save-outputs") != 0)
    save_outputs(exported, data.test, batch, device, parsed["save-outputs"].as<std::string>());
  std::string full_path =
      (std::filesystem::path(parsed["model"].as<std::string>()).parent_path() / "full_model.pt")
          .string();
  if (parsed.count("full") != 0) full_path = parsed["full"].as<std::string>();
  if (std::filesystem::exists(full_path)) {
    ExportDescription full_description;
    auto full = load_exported(full_path, &full_description);
    const Measured f = measure(full, data.test, batch, device);
    std::printf("full (units 0-%lld + classifier): test accuracy %.4f, %lld params, %.0f images/s\n",
                static_cast<long long>(full_description.exit_unit), f.accuracy,
                static_cast<long long>(f.params), f.images_per_second);
    std::printf("exported / full: %.3fx params, %.2fx throughput\n",
                static_cast<double>(e.params) / static_cast<double>(f.params),
                e.images_per_second / f.images_per_second);
  }
  return 0;
}

}  // namespace neuroflux::cli
