// Checkpoint loading as --resume does it: Checkpointer::load reads state.json, then the weights
// archive it names into a module (and the optimizer archive into an optimizer). Input: state.json's
// length (2 bytes little-endian), state.json, the weights archive's length (2 bytes), the weights
// archive, then the optimizer archive (the rest); they are written as state.json, model.pt and
// optimizer.pt. Promise: a DataError, or weights of the shapes and dtypes the module had (what the
// resumed run goes on training) and a state.
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <new>
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

// Two bugs found here and not fixed (src/train/ belongs to another change in flight), each an
// exception other than a DataError escaping Checkpointer::load (the CLI exits 1 with a raw
// message instead of 3 naming the file); reproducers in tests/fuzz/known/:
//  1. it reads state.json's fields with json::at, so a state.json that parses but is no object,
//     or lacks "model_file" (a string), "optimizer_file" or "state", escapes as
//     nlohmann::json::out_of_range or type_error;
//  2. it catches c10::Error only, but a corrupt archive fails with the TorchScript importer's
//     other exceptions too: torch::jit::ErrorReport, std::runtime_error, std::out_of_range.
// So that fuzzing goes on past them, inputs that hit them are skipped, unless
// NEUROFLUX_FUZZ_KNOWN_BUGS is set.
const bool kReportKnownBugs = std::getenv("NEUROFLUX_FUZZ_KNOWN_BUGS") != nullptr;

bool hits_known_state_bug(const uint8_t* state, size_t size) {
  if (kReportKnownBugs) return false;
  const auto record = nlohmann::json::parse(state, state + size, nullptr, /*exceptions=*/false);
  if (record.is_discarded()) return false;  // peek()'s DataError, as it should be
  return !record.is_object() || !record.contains("model_file") ||
         !record["model_file"].is_string() || !record.contains("optimizer_file") ||
         !record.contains("state");
}

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
  if (hits_known_state_bug(state.first, state.second)) return 0;
  neuroflux::fuzz::write_bytes(dir / "state.json", state.first, state.second);
  neuroflux::fuzz::write_bytes(dir / "model.pt", model.first, model.second);
  neuroflux::fuzz::write_bytes(dir / "optimizer.pt", in.p, in.left);

  torch::nn::Sequential module = make_module();
  torch::optim::SGD optimizer(module->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  std::vector<at::Tensor> before;
  for (const auto& t : module->parameters()) before.push_back(t.detach().clone());
  for (const auto& t : module->buffers()) before.push_back(t.detach().clone());

  neuroflux::fuzz::expect_clear_errors([&] {
    std::optional<nlohmann::json> loaded;
    try {
      loaded = neuroflux::Checkpointer(dir.string()).load(*module, &optimizer);
    } catch (const neuroflux::Error&) {
      throw;  // the intended error (a std::exception too, so caught before those)
    } catch (const std::bad_alloc&) {
      throw;  // an absurd size read from the archive: a finding of its own
    } catch (const std::exception&) {
      if (kReportKnownBugs) throw;
      return;  // known bug 2
    }
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
