// `neuroflux bench-ops`: throughput of bitmap_pack / bitmap_unpack against a plain copy of the
// same dense bytes, measured in the same run, at sparsity 0.3, 0.5, 0.7 and 0.9, and the bytes a
// packed tensor takes against dense. Prints a Markdown table; --json FILE writes the figures.
//
// Throughput is dense bytes / time for every column (pack reads them, unpack writes them, a copy
// does both), so the columns compare directly. Two copies are timed: clone() allocates its output
// like pack and unpack do (on the CPU a fresh allocation of this size is page-faulted in, which
// is part of the cost), copy_() writes into an existing tensor (the memory-bandwidth bound).
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <c10/util/irange.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "commands.h"
#include "config_args.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/ops/bitmap.h"
#include "neuroflux/util/atomic_file.h"

namespace neuroflux::cli {
namespace {

struct OpRow {
  double sparsity = 0;
  int64_t nnz = 0;
  int64_t dense_bytes = 0;
  int64_t packed_bytes = 0;
  double pack_ms = 0, unpack_ms = 0, clone_ms = 0, copy_ms = 0;
};

// Median wall time of `repeats` calls in milliseconds, after one warm-up call. On CUDA the
// device is synchronised around every call so the time covers the kernels, not their launch.
double time_ms(const std::function<void()>& f, int64_t repeats, bool cuda) {
  const auto sync = [cuda] {
    if (cuda) torch::cuda::synchronize();
  };
  f();
  sync();
  std::vector<double> times;
  for (int64_t r = 0; r < repeats; ++r) {
    sync();
    const auto t0 = std::chrono::steady_clock::now();
    f();
    sync();
    times.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return median(times);
}

double gbps(int64_t bytes, double ms) { return ms > 0 ? static_cast<double>(bytes) / ms / 1e6 : 0; }

// n float32 values in [0.1, 1.1) of which a fraction `sparsity` (in expectation) is +0.0.
at::Tensor sparse_input(int64_t n, double sparsity, const torch::Device& device) {
  auto gen = at::detail::createCPUGenerator(1234);
  const auto opts = torch::TensorOptions().dtype(torch::kFloat);
  at::Tensor x = at::rand({n}, gen, opts).add_(0.1);
  x.masked_fill_(at::rand({n}, gen, opts) < sparsity, 0.0);
  return x.to(device);
}

}  // namespace

int bench_ops_command(const Args& args) {
  cxxopts::Options options("neuroflux bench-ops",
                           "Throughput of the bitmap pack/unpack operators against a plain copy");
  options.add_options()("size", "elements per tensor (float32)",
                        cxxopts::value<int64_t>()->default_value("16777216"))(
      "repeats", "timed calls per measurement (the median is reported)",
      cxxopts::value<int64_t>()->default_value("20"))(
      "device", "cpu or cuda", cxxopts::value<std::string>()->default_value("cpu"))(
      "threads", "CPU threads (default: all hardware threads)", cxxopts::value<int64_t>())(
      "json", "also write the figures to this JSON file", cxxopts::value<std::string>())(
      "h,help", "print this help");
  const auto parsed = parse_args(options, args);
  if (parsed.count("help") != 0) {
    const std::vector<Example> examples = {
        {"16 Mi elements, 20 repeats, all cores", "neuroflux bench-ops"},
        {"a quick run on one thread, figures to a file",
         "neuroflux bench-ops --size 1048576 --repeats 5 --threads 1 --json bench-ops.json"}};
    std::printf("%s\n", help_text(options, examples).c_str());
    return 0;
  }
  const int64_t n = parsed["size"].as<int64_t>();
  const int64_t repeats = parsed["repeats"].as<int64_t>();
  const std::string device_name = parsed["device"].as<std::string>();
  if (n <= 0)
    throw ConfigError("bench-ops: --size must be a positive number of elements, got " +
                      std::to_string(n));
  if (repeats <= 0)
    throw ConfigError("bench-ops: --repeats must be positive, got " + std::to_string(repeats));
  if (device_name != "cpu" && device_name != "cuda")
    throw ConfigError("bench-ops: --device must be cpu or cuda, got '" + device_name + "'");
  const bool cuda = device_name == "cuda";
  if (cuda && !torch::cuda::is_available())
    throw Error("bench-ops: --device cuda, but no CUDA device is available to this LibTorch");
  const int64_t threads = apply_bench_threads(parsed, "bench-ops");
  const torch::Device device(cuda ? torch::kCUDA : torch::kCPU);

  std::vector<OpRow> rows;
  for (const double sparsity : {0.3, 0.5, 0.7, 0.9}) {
    const at::Tensor x = sparse_input(n, sparsity, device);
    at::Tensor dst = torch::empty_like(x);
    auto [mask, values] = ops::bitmap_pack(x);
    // The benchmark measures a correct operator or nothing.
    const at::Tensor back = ops::bitmap_unpack(mask, values, x.sizes());
    if (!torch::equal(back.view(torch::kInt), x.view(torch::kInt)))
      throw Error("bench-ops: unpack(pack(x)) differs from x at sparsity " +
                  std::to_string(sparsity));

    OpRow row;
    row.sparsity = sparsity;
    row.nnz = values.numel();
    row.dense_bytes = static_cast<int64_t>(x.nbytes());
    row.packed_bytes = ops::bitmap_packed_bytes(mask, values);
    row.pack_ms = time_ms([&] { (void)ops::bitmap_pack(x); }, repeats, cuda);
    row.unpack_ms =
        time_ms([&] { (void)ops::bitmap_unpack(mask, values, x.sizes()); }, repeats, cuda);
    row.clone_ms = time_ms([&] { (void)x.clone(); }, repeats, cuda);
    row.copy_ms = time_ms([&] { dst.copy_(x); }, repeats, cuda);
    rows.push_back(row);
  }

  std::printf(
      "bitmap pack/unpack, %lld float32 elements (%.1f MiB dense), %s, %lld threads, "
      "median of %lld\n\n",
      static_cast<long long>(n), static_cast<double>(n) * 4 / (1 << 20), device_name.c_str(),
      static_cast<long long>(threads), static_cast<long long>(repeats));
  std::printf(
      "| sparsity | packed / dense | pack GB/s | unpack GB/s | clone GB/s | copy_ GB/s "
      "| pack ms | unpack ms | clone ms | copy_ ms | (pack+unpack) / clone "
      "| (pack+unpack) / copy_ |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const OpRow& r : rows) {
    const double both = r.pack_ms + r.unpack_ms;
    std::printf(
        "| %.1f | %.3f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2fx | "
        "%.2fx |\n",
        r.sparsity, static_cast<double>(r.packed_bytes) / r.dense_bytes,
        gbps(r.dense_bytes, r.pack_ms), gbps(r.dense_bytes, r.unpack_ms),
        gbps(r.dense_bytes, r.clone_ms), gbps(r.dense_bytes, r.copy_ms), r.pack_ms, r.unpack_ms,
        r.clone_ms, r.copy_ms, both / r.clone_ms, both / r.copy_ms);
  }
  std::printf(
      "\nGB/s = dense bytes / time. packed / dense = (mask words + non-zeros) / dense "
      "float32 = 1/32 + (1 - sparsity).\n");

  if (parsed.count("json") != 0) {
    nlohmann::json out = {{"benchmark", "bitmap_pack_unpack"},
                          {"device", device_name},
                          {"threads", threads},
                          {"elements", n},
                          {"dtype", "float32"},
                          {"repeats", repeats},
                          {"results", nlohmann::json::array()}};
    for (const OpRow& r : rows) {
      out["results"].push_back(
          {{"sparsity", r.sparsity},
           {"nonzeros", r.nnz},
           {"dense_bytes", r.dense_bytes},
           {"packed_bytes", r.packed_bytes},
           {"packed_fraction", static_cast<double>(r.packed_bytes) / r.dense_bytes},
           {"pack_ms", r.pack_ms},
           {"unpack_ms", r.unpack_ms},
           {"clone_ms", r.clone_ms},
           {"copy_ms", r.copy_ms},
           {"pack_gbps", gbps(r.dense_bytes, r.pack_ms)},
           {"unpack_gbps", gbps(r.dense_bytes, r.unpack_ms)},
           {"clone_gbps", gbps(r.dense_bytes, r.clone_ms)},
           {"copy_gbps", gbps(r.dense_bytes, r.copy_ms)},
           {"pack_unpack_over_clone", (r.pack_ms + r.unpack_ms) / r.clone_ms},
           {"pack_unpack_over_copy", (r.pack_ms + r.unpack_ms) / r.copy_ms}});
    }
    write_file_atomic(parsed["json"].as<std::string>(), out.dump(2) + "\n");
  }
  return 0;
}

}  // namespace neuroflux::cli
