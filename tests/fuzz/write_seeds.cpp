// Writes the seed corpora, tests/fuzz/corpus/<harness>/<name>: for each harness a few valid inputs
// made with the library's own writers (cache files, checkpoints, plans, operator calls) and
// near-valid ones, each broken in one way. The files are committed; run this again after a
// format change:  build-fuzz/fuzz_write_seeds SOURCE_DIR   (scripts/fuzz.sh --write-seeds).
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "cache/cache_file.h"
#include "data/data_test_files.h"
#include "fuzz_support.h"
#include "neuroflux/cache/activation_cache.h"
#include "neuroflux/ops/bitmap.h"
#include "neuroflux/plan/plan.h"
#include "neuroflux/train/checkpoint.h"
#include "neuroflux/util/atomic_file.h"
#include "tensor_input.h"

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;
using neuroflux::data::test::gzip_stored;
using neuroflux::fuzz::Elements;
using neuroflux::fuzz::TensorInputWriter;

namespace {

fs::path corpus_root;

void seed(const std::string& harness, const std::string& name, const Bytes& bytes) {
  const fs::path dir = corpus_root / harness;
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void seed(const std::string& harness, const std::string& name, const std::string& text) {
  seed(harness, name, Bytes(text.begin(), text.end()));
}

Bytes file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void put_u16(Bytes& out, size_t n) {
  if (n > 0xffff) throw std::runtime_error("seed part over 64 KiB");
  out.push_back(static_cast<uint8_t>(n));
  out.push_back(static_cast<uint8_t>(n >> 8));
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

void config_seeds(const fs::path& source) {
  for (const auto& entry : fs::directory_iterator(source / "configs")) {
    if (entry.path().extension() == ".json")
      seed("config", "shipped-" + entry.path().stem().string(), file_bytes(entry.path()));
  }
  seed("config", "overrides",
       "{\"method\": \"neuroflux\"}\n--set memory.budget=16MiB\n--set model.name=vgg11"
       "\n--set model.width=0.25\n--set neuroflux.cache.where=disk");
  seed("config", "row-centric-auto",
       "{\"model\": {\"batch_norm\": false, \"row_centric\": {\"stripes\": \"auto\"}},"
       " \"memory\": {\"budget\": \"1.5GiB\"}, \"device\": \"cuda:1\"}");
  seed("config", "bad-epochs", "{\"train\": {\"epochs\": -3}}");
  seed("config", "unknown-key", "{\"train\": {\"epochz\": 3}}");
  seed("config", "syntax-error", "{\"train\": {\"epochs\": 3,}}\n");
  seed("config", "batch-over-max", "{}\n--set train.batch_size=auto\n--set train.max_batch_size=8"
                                   "\n--set train.batch_size=16");
  seed("config", "set-into-a-value", "{\"seed\": 1}\n--set seed.x=2");
}

void idx_seeds() {
  using namespace neuroflux::data::test;
  const auto pair = [](const Bytes& labels, const Bytes& images) {
    Bytes out;
    put_u16(out, labels.size());
    return cat({out, labels, images});
  };
  seed("idx", "valid", pair(idx_labels(3), idx_images(3, 4, 5)));
  seed("idx", "valid-gzip", pair(gzip_stored(idx_labels(2)), gzip_stored(idx_images(2, 3, 3))));
  seed("idx", "truncated-images", pair(idx_labels(3), truncated(idx_images(3, 4, 5), 60)));
  seed("idx", "count-mismatch", pair(idx_labels(2), idx_images(3, 2, 2)));
  Bytes bad_label = idx_labels(2);
  bad_label.back() = 10;
  seed("idx", "label-out-of-range", pair(bad_label, idx_images(2, 2, 2)));
  seed("idx", "swapped-files", pair(idx_images(1, 2, 2), idx_labels(1)));
}

void cifar_seeds() {
  using namespace neuroflux::data::test;
  seed("cifar", "cifar10", cat({{0}, cifar_records(2, 10, false)}));
  seed("cifar", "cifar100", cat({{1}, cifar_records(1, 100, true)}));
  seed("cifar", "cifar10-gzip", cat({{0}, gzip_stored(cifar_records(1, 10, false))}));
  seed("cifar", "truncated", cat({{0}, truncated(cifar_records(2, 10, false), 3000)}));
  Bytes bad = cifar_records(1, 100, true);
  bad[0] = 20;  // coarse labels are below 20
  seed("cifar", "coarse-label-out-of-range", cat({{1}, bad}));
}

void cache_seeds(const fs::path& scratch) {
  struct Made {
    std::string name;
    std::vector<int64_t> shape;
    int64_t count;
    uint64_t key;
    at::ScalarType dtype;
    uint8_t layout;
  };
  // The layouts of fuzz_cache_header.cpp's kLayouts.
  const std::vector<Made> made{{"float16", {2, 3}, 4, 0x0123456789abcdefull, at::kHalf, 0},
                               {"float32", {2, 3}, 4, 0x0123456789abcdefull, at::kFloat, 0},
                               {"scalar-samples", {}, 6, 42, at::kFloat, 3},
                               {"empty", {3}, 0, 1, at::kHalf, 4}};
  for (const auto& m : made) {
    const std::string path = (scratch / ("cache-" + m.name)).string();
    neuroflux::CacheOptions options;
    options.where = "disk";
    options.dtype = m.dtype;
    options.path = path;
    {
      auto cache = neuroflux::ActivationCache::create(options, m.shape, m.count, m.key);
      std::vector<int64_t> sizes{m.count};
      sizes.insert(sizes.end(), m.shape.begin(), m.shape.end());
      if (m.count > 0) cache->write(0, torch::randn(sizes));
      cache->finish();
    }
    const Bytes file = file_bytes(path);
    seed("cache_header", m.name, cat({{0, m.layout}, file}));
    if (m.layout == 0) {
      seed("cache_header", m.name + "-stale-key", cat({{0, 1}, file}));
      Bytes flipped = file;
      flipped.back() ^= 0x40;
      seed("cache_header", m.name + "-corrupt-data", cat({{0, 0}, flipped}));
      seed("cache_header", m.name + "-corrupt-data-crc-fixed", cat({{2, 0}, flipped}));
      seed("cache_header", m.name + "-truncated-crc-fixed",
           cat({{3, 0}, Bytes(file.begin(), file.end() - 2)}));
      Bytes header_only(file.begin(), file.begin() + 4096);
      seed("cache_header", m.name + "-header-only", cat({{3, 5}, header_only}));
    }
  }
}

void checkpoint_seeds(const fs::path& scratch) {
  // The harness's module and optimizer, after one step so momentum buffers exist.
  torch::nn::Sequential module(torch::nn::Linear(3, 2), torch::nn::BatchNorm1d(2));
  torch::optim::SGD optimizer(module->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  module->forward(torch::randn({4, 3})).sum().backward();
  optimizer.step();
  const fs::path dir = scratch / "checkpoint";
  neuroflux::Checkpointer(dir.string()).save(*module, &optimizer, {{"epochs_done", 1}}, 1);
  const Bytes model = file_bytes(dir / "step-1-model.pt");
  const Bytes optim = file_bytes(dir / "step-1-optimizer.pt");
  const auto input = [](const std::string& state, const Bytes& model, const Bytes& optim) {
    Bytes out;
    put_u16(out, state.size());
    out.insert(out.end(), state.begin(), state.end());
    put_u16(out, model.size());
    return cat({out, model, optim});
  };
  const std::string state =
      R"({"step": 1, "model_file": "model.pt", "optimizer_file": "optimizer.pt",)"
      R"( "state": {"epochs_done": 1}})";
  const std::string no_optimizer =
      R"({"step": 1, "model_file": "model.pt", "optimizer_file": null,)"
      R"( "state": {"epochs_done": 1}})";
  seed("checkpoint", "valid", input(state, model, optim));
  seed("checkpoint", "valid-without-optimizer", input(no_optimizer, model, {}));
  seed("checkpoint", "truncated-model", input(state, Bytes(model.begin(), model.end() - 100), optim));
  seed("checkpoint", "optimizer-as-model", input(state, optim, model));
  seed("checkpoint", "corrupt-state", input("{\"step\": 1, ", model, optim));
  // As save() writes state.json now: with the archives' sizes and CRC-32s (the seeds above have
  // none, as checkpoints written before the checksums).
  const auto entry = [](const Bytes& file) {
    return "{\"bytes\": " + std::to_string(file.size()) + ", \"crc32\": " +
           std::to_string(neuroflux::detail::crc32_of(file.data(), file.size())) + "}";
  };
  const std::string checked =
      R"({"step": 1, "model_file": "model.pt", "optimizer_file": "optimizer.pt", "files": )"
      R"({"model.pt": )" + entry(model) + R"(, "optimizer.pt": )" + entry(optim) +
      R"(}, "state": {"epochs_done": 1}})";
  seed("checkpoint", "checksummed", input(checked, model, optim));
  Bytes flipped = model;
  flipped[flipped.size() / 2] ^= 1;
  seed("checkpoint", "checksummed-flipped-byte", input(checked, flipped, optim));
  seed("checkpoint", "checksummed-truncated-model",
       input(checked, Bytes(model.begin(), model.end() - 100), optim));
}

void plan_seeds() {
  neuroflux::Plan plan;
  plan.budget_bytes = 16 << 20;
  plan.smallest_feasible_budget = 3 << 20;
  plan.predicted_seconds = 61.5;
  plan.heads = {{2, 32, false, true, "conv"},
                {1, 16, false, true, "conv"},
                {1, 64, false, false, "deep"},
                {1, 0, true, true, "conv"}};
  neuroflux::PlannedBlock a{0, 1, 64, 3, 0.025, 256, 12000000, 20.5, {"plain", "recompute"}};
  neuroflux::PlannedBlock b{2, 3, 128, 5, 0.05, 512, 9000000, 41.0, {}};
  plan.blocks = {a, b};
  seed("plan", "two-blocks", plan.to_json().dump(2));
  plan.budget_bytes.reset();
  plan.blocks = {neuroflux::PlannedBlock{0, 3, 256, 5, 0.1, 1024, 30000000, 50.0,
                                         {"plain", "row_centric", "plain", "plain"}}};
  seed("plan", "one-block-unbounded", plan.to_json().dump());
  std::string text = plan.to_json().dump();
  seed("plan", "missing-lr", text.replace(text.find("\"lr\""), 4, "\"lx\""));
  seed("plan", "not-an-object", "[1, 2, 3]");
}

void bitmap_seeds() {
  torch::manual_seed(5);
  at::Tensor x = torch::randn({3, 5});
  x[0][1] = 0.0;
  x[1][2] = -0.0;
  x[2][3] = std::numeric_limits<float>::quiet_NaN();
  x = x.relu();
  const auto pack_of = [](const at::Tensor& t) {
    TensorInputWriter w;
    w.byte(0);
    w.tensor(t, Elements::kRawBits);
    return w.bytes();
  };
  seed("bitmap_args", "pack-float", pack_of(x));
  seed("bitmap_args", "pack-half", pack_of(torch::randn({16}).relu().to(at::kHalf)));
  seed("bitmap_args", "pack-double-3d", pack_of(torch::randn({2, 2, 2}, at::kDouble)));
  seed("bitmap_args", "pack-int", pack_of(torch::ones({4}, at::kInt)));

  const at::Tensor y = torch::randn({2, 8}).relu();  // 16 elements: 1 mask word
  const auto packed = neuroflux::ops::bitmap_pack(y);
  const at::Tensor mask = std::get<0>(packed), values = std::get<1>(packed);
  const auto unpack_of = [&](const std::vector<int64_t>& sizes, const at::Tensor& v) {
    TensorInputWriter w;
    w.byte(1);
    w.tensor(mask, Elements::kRawBits);
    w.tensor(v, Elements::kRawBits);
    w.int64_list(sizes);
    return w.bytes();
  };
  seed("bitmap_args", "unpack-valid", unpack_of({2, 8}, values));
  seed("bitmap_args", "unpack-sizes-too-big", unpack_of({2, 80}, values));
  seed("bitmap_args", "unpack-values-short", unpack_of({2, 8}, values.narrow(0, 0, values.size(0) - 1)));
  seed("bitmap_args", "unpack-huge-sizes", unpack_of({int64_t{1} << 40, 0, int64_t{1} << 40}, values));

  TensorInputWriter relu;
  relu.byte(2);
  relu.tensor(torch::randn({4, 4}), Elements::kRawBits);
  seed("bitmap_args", "relu", relu.bytes());
  TensorInputWriter backward;
  backward.byte(3);
  backward.tensor(torch::randn({16}), Elements::kRawBits);
  backward.tensor(mask, Elements::kRawBits);
  seed("bitmap_args", "relu-backward", backward.bytes());
}

// conv2d_rows calls in fuzz_conv2d_rows_args.cpp's encoding; small integers are one byte (v + 8).
void conv2d_rows_seeds() {
  struct Call {
    int64_t n, cin, rows, w, cout, k, stride, pad, dil, groups, row0, height, r0, r1;
    at::ScalarType dtype;
  };
  const auto write_call = [](TensorInputWriter& out, const Call& c) {
    const auto opts = at::TensorOptions().dtype(c.dtype);
    out.tensor(torch::randn({c.n, c.cin, c.rows, c.w}, opts), Elements::kSmallValues);
    out.tensor(torch::randn({c.cout, c.cin / c.groups, c.k, c.k}, opts), Elements::kSmallValues);
    out.byte(1);
    out.tensor(torch::randn({c.cout}, opts), Elements::kSmallValues);
    for (int64_t v : {c.stride, c.pad, c.dil}) out.int64_list({v, v});
    for (int64_t v : {c.groups, c.row0, c.height, c.r0, c.r1}) out.byte(static_cast<uint8_t>(v + 8));
  };
  // Output rows [3, 6) of a 3x3 conv (padding 1) read input rows [2, 7): the band holds them.
  const Call interior{1, 2, 5, 6, 3, 3, 1, 1, 1, 1, 2, 10, 3, 6, at::kFloat};
  const Call top_edge{2, 4, 4, 5, 2, 3, 2, 1, 1, 2, 0, 9, 0, 2, at::kDouble};
  const Call missing_row{1, 2, 4, 6, 3, 3, 1, 1, 1, 1, 3, 10, 3, 6, at::kFloat};
  const Call past_output{1, 2, 5, 6, 3, 3, 1, 1, 1, 1, 2, 10, 3, 11, at::kFloat};
  const Call bfloat{1, 2, 5, 6, 3, 3, 1, 1, 1, 1, 2, 10, 3, 6, at::kBFloat16};
  const std::vector<std::pair<std::string, Call>> forwards{{"forward-interior", interior},
                                                           {"forward-top-edge-groups", top_edge},
                                                           {"forward-band-misses-a-row", missing_row},
                                                           {"forward-rows-past-output", past_output},
                                                           {"forward-bfloat16", bfloat}};
  for (const auto& [name, call] : forwards) {
    TensorInputWriter w;
    w.byte(0);
    write_call(w, call);
    seed("conv2d_rows_args", name, w.bytes());
  }
  TensorInputWriter out;
  out.byte(1);
  write_call(out, interior);
  out.tensor(torch::zeros({1, 3, 3, 6}), Elements::kSmallValues);
  seed("conv2d_rows_args", "out", out.bytes());
  TensorInputWriter backward;
  backward.byte(2);
  write_call(backward, interior);
  backward.tensor(torch::randn({1, 3, 3, 6}), Elements::kSmallValues);
  backward.byte(7);
  seed("conv2d_rows_args", "backward", backward.bytes());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s SOURCE_DIR\n", argv[0]);
    return 2;
  }
  const fs::path source = argv[1];
  corpus_root = source / "tests/fuzz/corpus";
  const fs::path scratch = neuroflux::fuzz::scratch_dir();
  config_seeds(source);
  idx_seeds();
  cifar_seeds();
  cache_seeds(scratch);
  checkpoint_seeds(scratch);
  plan_seeds();
  bitmap_seeds();
  conv2d_rows_seeds();
  std::printf("seeds written under %s\n", corpus_root.c_str());
  return 0;
}
