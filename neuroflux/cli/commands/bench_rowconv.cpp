// `neuroflux bench-rowconv`: row-centric execution of a model's conv stack against plain
// backprop, one training step (forward, cross-entropy, backward) at a time, measured in the same
// run: the MemoryMeter peak during the step (everything the step allocates, parameters and their
// gradients included) and the median seconds per step, for plain, overlap and two-phase at each
// band count. Default: vgg16 without batch norm, synthetic 3x128x128 images, batch 8, CPU.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "commands.h"
#include "config_args.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/memory/memory_meter.h"
#include "neuroflux/models/model_zoo.h"
#include "neuroflux/rowcentric/row_centric.h"
#include "neuroflux/util/atomic_file.h"

namespace neuroflux::cli {
namespace {

struct StackRow {
  std::string scheme;  // "plain", "overlap", "two_phase"
  int64_t stripes = 0;
  int64_t peak_bytes = 0;      // meter peak during the step
  int64_t baseline_bytes = 0;  // live before the step (parameters, gradients, the batch)
  double seconds = 0;
};

std::vector<int64_t> parse_list(const std::string& text, const char* flag) {
  std::vector<int64_t> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      out.push_back(std::stoll(item));
    } catch (const std::exception&) {
      throw ConfigError(std::string("bench-rowconv: ") + flag + " must be comma-separated "
                        "positive integers, got '" + text + "'");
    }
    if (out.back() <= 0) {
      throw ConfigError(std::string("bench-rowconv: ") + flag + " entries must be positive, got " +
                        item);
    }
  }
  return out;
}

}  // namespace

int bench_rowconv_command(const Args& args) {
  cxxopts::Options options("neuroflux bench-rowconv",
                           "Peak memory and step time of row-centric conv stacks against plain "
                           "backprop (one training step of a zoo model without batch norm)");
  options.add_options()("model", "vgg11|vgg16|vgg19|simplecnn",
                        cxxopts::value<std::string>()->default_value("vgg16"))(
      "image-size", "square input size", cxxopts::value<int64_t>()->default_value("128"))(
      "batch", "batch size", cxxopts::value<int64_t>()->default_value("8"))(
      "stripes", "band counts, comma-separated",
      cxxopts::value<std::string>()->default_value("4,8,16"))(
      "repeats", "timed steps per configuration (the median is reported)",
      cxxopts::value<int64_t>()->default_value("3"))(
      "threads", "CPU threads (default: all hardware threads)", cxxopts::value<int64_t>())(
      "json", "also write the figures to this JSON file", cxxopts::value<std::string>())(
      "h,help", "print this help");
  const auto parsed = parse_args(options, args);
  if (parsed.count("help") != 0) {
    const std::vector<Example> examples = {
        {"vgg16 at 128 px, batch 8, 4, 8 and 16 stripes", "neuroflux bench-rowconv"},
        {"a smaller run, figures to a file",
         "neuroflux bench-rowconv --model vgg11 --image-size 64 --stripes 4,8 "
         "--json bench-rowconv.json"}};
    std::printf("%s\n", help_text(options, examples).c_str());
    return 0;
  }
  const std::string model_name = parsed["model"].as<std::string>();
  const int64_t size = parsed["image-size"].as<int64_t>();
  const int64_t batch = parsed["batch"].as<int64_t>();
  const int64_t repeats = parsed["repeats"].as<int64_t>();
  const auto stripes_list = parse_list(parsed["stripes"].as<std::string>(), "--stripes");
  if (size <= 0 || batch <= 0 || repeats <= 0) {
    throw ConfigError("bench-rowconv: --image-size, --batch and --repeats must be positive");
  }
  const int64_t threads = apply_bench_threads(parsed, "bench-rowconv");

  MemoryMeter& meter = MemoryMeter::cpu();  // installs the tracking allocator before anything
  torch::manual_seed(0);
  ModelConfig config;
  config.name = model_name;
  config.batch_norm = false;
  UnitChain model = build_model(config, {3, size, size}, 10);
  model->train();
  const at::Tensor x = torch::randn({batch, 3, size, size});
  const at::Tensor y = torch::randint(0, 10, {batch}, torch::kLong);

  auto step = [&] {
    model->zero_grad();
    torch::nn::functional::cross_entropy(model->forward(x), y).backward();
  };
  auto measure = [&](StackRow row) {
    step();  // warm-up: allocates the gradients, so the baseline below includes them
    std::vector<double> times;
    int64_t peak = 0;
    const int64_t baseline = meter.current();
    for (int64_t r = 0; r < repeats; ++r) {
      meter.reset_peak();
      const auto t0 = std::chrono::steady_clock::now();
      step();
      times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      peak = std::max(peak, meter.peak());
    }
    row.peak_bytes = peak;
    row.baseline_bytes = baseline;
    row.seconds = median(times);
    std::fprintf(stderr, "bench-rowconv: %s %lld stripes: peak %.1f MiB, %.3f s/step\n",
                 row.scheme.c_str(), static_cast<long long>(row.stripes),
                 row.peak_bytes / 1048576.0, row.seconds);
    return row;
  };

  std::vector<StackRow> rows;
  model->set_row_centric(std::nullopt);
  rows.push_back(measure(StackRow{"plain", 0}));
  for (const auto scheme : {rowcentric::RowScheme::kOverlap, rowcentric::RowScheme::kTwoPhase}) {
    for (const int64_t s : stripes_list) {
      rowcentric::RowCentricOptions o;
      o.stripes = s;
      o.scheme = scheme;
      model->set_row_centric(o);
      rows.push_back(measure(StackRow{rowcentric::to_string(scheme), s}));
    }
  }
  model->set_row_centric(std::nullopt);

  const StackRow& plain = rows.front();
  std::printf("\n%s (no batch norm), %lldx3x%lldx%lld, CPU, %lld threads, median of %lld steps\n\n",
              model_name.c_str(), static_cast<long long>(batch), static_cast<long long>(size),
              static_cast<long long>(size), static_cast<long long>(threads),
              static_cast<long long>(repeats));
  std::printf("| scheme | stripes | peak MiB | peak / plain | above baseline MiB | s / step | "
              "time / plain |\n|---|---|---|---|---|---|---|\n");
  for (const StackRow& r : rows) {
    std::printf("| %s | %s | %.1f | %.2f | %.1f | %.3f | %.2fx |\n", r.scheme.c_str(),
                r.stripes == 0 ? "-" : std::to_string(r.stripes).c_str(),
                r.peak_bytes / 1048576.0, static_cast<double>(r.peak_bytes) / plain.peak_bytes,
                (r.peak_bytes - r.baseline_bytes) / 1048576.0, r.seconds,
                r.seconds / plain.seconds);
  }
  std::printf("\npeak: MemoryMeter peak during one step (parameters, gradients and the batch "
              "included); baseline: live bytes before the step.\n");

  if (parsed.count("json") != 0) {
    nlohmann::json out = {{"benchmark", "row_centric"}, {"model", model_name},
                          {"batch_norm", false},       {"input", {batch, 3, size, size}},
                          {"device", "cpu"},           {"threads", threads},
                          {"repeats", repeats},        {"results", nlohmann::json::array()}};
    for (const StackRow& r : rows) {
      out["results"].push_back({{"scheme", r.scheme},
                                {"stripes", r.stripes},
                                {"peak_bytes", r.peak_bytes},
                                {"baseline_bytes", r.baseline_bytes},
                                {"seconds_per_step", r.seconds},
                                {"peak_over_plain",
                                 static_cast<double>(r.peak_bytes) / plain.peak_bytes},
                                {"time_over_plain", r.seconds / plain.seconds}});
    }
    write_file_atomic(parsed["json"].as<std::string>(), out.dump(2) + "\n");
  }
  return 0;
}

}  // namespace neuroflux::cli
