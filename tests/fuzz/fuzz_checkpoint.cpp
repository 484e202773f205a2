// Checkpoint loading as --resume does it: Checkpointer::load reads state.json, then the weights
// archive it names into a module (and the optimizer archive into an optimizer). Input: state.json's
// length (2 bytes little-endian), state.json, the weights archive's length (2 bytes), the weights
// archive, then the optimizer archive (the rest); they are written as state.json, model.pt and
// optimizer.pt. Promise: a DataError, or weights of the shapes and dtypes the module had (what the
// resumed run goes on training) and a state.
//
// A state.json with "files" (the size and CRC-32 of each archive, as save() writes them) has its
// archives verified before LibTorch reads them, so mutated archives stop there. One without (as
// checkpoints written before the checksums are) has them checked against the zip's own per-entry
// CRC-32s and bounds, which LibTorch ignores; a mutation that gets past those (in a zip header
// LibTorch reads, or with a CRC-32 made to match) reaches LibTorch's archive reader, which in 1.13
// can crash (SIGSEGV in the TorchScript importer) or allocate gigabytes on some corrupt archives:
// a finding there is LibTorch's. regress-archive-* are such archives, found before the checks
// (each -checksummed one behind a record whose checksums refuse it).
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include "fuzz_support.h"
#include "neuroflux/train/checkpoint.h"

namespace {

// Parameters and buffers, as resumed runs have them, and SGD with momentum (per-parameter state).
torch::nn::Sequential make_module() {
  return torch::nn::Sequential(torch::nn::Linear(3, 2), torch::nn::BatchNorm1d(2));
}

struct Cursor {
  const uint8_t* p;
  size_t left;
  std::pair<const uint8_t*, size_t> part() {  // a length-prefixed part
    size_t n = left >= 2 ? std::min<size_t>(p[0] | (size_t{p[1]} << 8), left - 2) : 0;
    const uint8_t* start = p + std::min<size_t>(2, left);
    left -= std::min<size_t>(2, left) + n;
    p = start + n;
    return {start, n};
  }
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto dir = neuroflux::fuzz::scratch_dir() / "checkpoint";
  std::filesystem::create_directories(dir);
  Cursor in{data, size};
  const auto state = in.part();
  const auto model = in.part();
  neuroflux::fuzz::write_bytes(dir / "state.json", state.first, state.second);
  neuroflux::fuzz::write_bytes(dir / "model.pt", model.first, model.second);
  neuroflux::fuzz::write_bytes(dir / "optimizer.pt", in.p, in.left);

  torch::nn::Sequential module = make_module();
  torch::optim::SGD optimizer(module->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  std::vector<at::Tensor> before;
  for (const auto& t : module->parameters()) before.push_back(t.detach().clone());
  for (const auto& t : module->buffers()) before.push_back(t.detach().clone());

  neuroflux::fuzz::expect_clear_errors([&] {
    // A DataError is the intended answer; any other exception escaping is a finding.
    const std::optional<nlohmann::json> loaded =
        neuroflux::Checkpointer(dir.string()).load(*module, &optimizer);
    NF_FUZZ_REQUIRE(loaded.has_value(), "state.json exists, so there is a checkpoint");
    std::vector<at::Tensor> after;
    for (const auto& t : module->parameters()) after.push_back(t);
    for (const auto& t : module->buffers()) after.push_back(t);
    NF_FUZZ_REQUIRE(after.size() == before.size(), "the module's tensors");
    for (size_t i = 0; i < after.size(); ++i) {
      NF_FUZZ_REQUIRE(after[i].sizes() == before[i].sizes() &&
                          after[i].scalar_type() == before[i].scalar_type(),
                      "tensor " + std::to_string(i) + " keeps its shape and dtype");
    }
  });
  return 0;
}
