// Checkpointer::load on checkpoints that are incomplete or damaged: every one is a DataError naming
// the file (the CLI's exit 3), found before LibTorch reads a damaged archive; checkpoints written
// before the checksums existed still load.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "neuroflux/train/checkpoint.h"
#include "neuroflux/util/atomic_file.h"
#include "neuroflux/util/errors.h"
#include "temp_dir.h"

namespace {

using Catch::Matchers::Contains;
using neuroflux::Checkpointer;
using neuroflux::test::TempDir;
using nlohmann::json;

constexpr float kWeight = 1.5f;  // every weight: a pattern to find in the archive

torch::nn::Linear make_linear() {
  torch::nn::Linear linear(3, 2);
  torch::NoGradGuard no_grad;
  linear->weight.fill_(kWeight);
  linear->bias.fill_(-2.0f);
  return linear;
}

std::string read_bytes(const std::string& path) { return neuroflux::read_file(path); }

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// A checkpoint of make_linear() with SGD momentum state, step 1, in `dir`.
void save_checkpoint(const std::string& dir) {
  torch::nn::Linear linear = make_linear();
  torch::optim::SGD optimizer(linear->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  Checkpointer(dir).save(*linear, &optimizer, {{"epochs_done", 1}}, 1);
}

json read_record(const std::string& dir) { return json::parse(read_bytes(dir + "/state.json")); }
void write_record(const std::string& dir, const json& record) {
  write_bytes(dir + "/state.json", record.dump(2));
}

/// The DataError message of loading the checkpoint in `dir` into a fresh module; "" when it loads.
std::string load_error(const std::string& dir) {
  torch::nn::Linear linear(3, 2);
  torch::optim::SGD optimizer(linear->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  try {
    Checkpointer(dir).load(*linear, &optimizer);
  } catch (const neuroflux::DataError& e) {
    return e.what();
  }
  return "";
}

/// `bytes` with the first weight's lowest mantissa bit flipped: an archive LibTorch reads without
/// complaint (it checks no CRC-32), with one weight changed by a rounding error.
std::string flip_weight_bit(std::string bytes) {
  char pattern[sizeof kWeight];
  std::memcpy(pattern, &kWeight, sizeof kWeight);
  const size_t at = bytes.find(std::string(pattern, sizeof pattern));
  REQUIRE(at != std::string::npos);
  bytes[at] ^= 1;  // little-endian: the first byte holds the lowest mantissa bits
  return bytes;
}

/// `bytes` with one byte of the first zip entry's alignment padding ("ZZZZ..." in its extra field)
/// changed: LibTorch reads the archive as before.
std::string flip_padding(std::string bytes) {
  const size_t at = bytes.find("ZZZZ");
  REQUIRE(at != std::string::npos);
  bytes[at] = 'Y';
  return bytes;
}

}  // namespace

TEST_CASE("a checkpoint saves and loads, with its files' sizes and checksums in state.json",
          "[train][integration]") {
  TempDir dir;
  save_checkpoint(dir.path().string());
  const json record = read_record(dir.path().string());
  for (const std::string name : {"step-1-model.pt", "step-1-optimizer.pt"}) {
    INFO(name);
    REQUIRE(record.at("files").contains(name));
    CHECK(record.at("files").at(name).at("bytes").get<uint64_t>() ==
          std::filesystem::file_size(dir.file(name)));
  }
  torch::nn::Linear linear(3, 2);
  torch::optim::SGD optimizer(linear->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  const auto state = Checkpointer(dir.path().string()).load(*linear, &optimizer);
  REQUIRE(state.has_value());
  CHECK(state->at("epochs_done") == 1);
  CHECK(torch::equal(linear->weight, make_linear()->weight));
}

TEST_CASE("a state.json without one of its fields, or with one of another type, names the field",
          "[train][integration]") {
  TempDir dir;
  const std::string d = dir.path().string();
  save_checkpoint(d);
  const json record = read_record(d);
  for (const std::string field : {"model_file", "optimizer_file", "state", "files"}) {
    SECTION("without " + field) {
      json broken = record;
      broken.erase(field);
      write_record(d, broken);
      const std::string message = load_error(d);
      if (field == "files") {
        CHECK(message.empty());  // as checkpoints written before the checksums: loads unchecked
      } else {
        CHECK_THAT(message, Contains(d + "/state.json") && Contains("\"" + field + "\"") &&
                                Contains("missing"));
        // --resume reads the record before anything else (resumable_checkpoint: peek()).
        CHECK_THROWS_AS(Checkpointer(d).peek(), neuroflux::DataError);
      }
    }
    SECTION(field + " of another type") {
      json broken = record;
      broken[field] = field == "state" ? json("trained") : json(42);
      write_record(d, broken);
      CHECK_THAT(load_error(d), Contains(d + "/state.json") && Contains("\"" + field + "\""));
    }
  }
  SECTION("not an object") {
    write_record(d, json::array({1, 2}));
    CHECK_THAT(load_error(d), Contains(d + "/state.json") && Contains("not a JSON object"));
  }
  SECTION("a checksum entry of another type") {
    json broken = record;
    broken["files"]["step-1-model.pt"]["crc32"] = "abc";
    write_record(d, broken);
    CHECK_THAT(load_error(d), Contains("\"files\"/\"step-1-model.pt\"") && Contains("crc32"));
  }
}

TEST_CASE("a checkpoint archive with one byte changed is refused before LibTorch reads it",
          "[train][integration]") {
  TempDir dir;
  const std::string d = dir.path().string();
  save_checkpoint(d);
  for (const std::string name : {"step-1-model.pt", "step-1-optimizer.pt"}) {
    INFO(name);
    const std::string path = dir.file(name);
    const std::string saved = read_bytes(path);
    // In the model, a weight; in the optimizer (no state yet), a byte of the padding LibTorch
    // puts in a zip entry's extra field, which it ignores when reading.
    write_bytes(path, name == "step-1-model.pt" ? flip_weight_bit(saved) : flip_padding(saved));
    CHECK_THAT(load_error(d), Contains(path) && Contains("checksum mismatch") &&
                                  Contains("changed or damaged since it was written"));
    write_bytes(path, saved);
    CHECK(load_error(d).empty());
  }
}

TEST_CASE("a truncated checkpoint archive names the file", "[train][integration]") {
  TempDir dir;
  const std::string d = dir.path().string();
  save_checkpoint(d);
  const std::string path = dir.file("step-1-model.pt");
  const std::string saved = read_bytes(path);
  write_bytes(path, saved.substr(0, saved.size() - 100));
  SECTION("checked against its recorded size") {
    CHECK_THAT(load_error(d), Contains(path) && Contains("checksum mismatch") &&
                                  Contains(std::to_string(saved.size())));
  }
  SECTION("without checksums, LibTorch's own error") {
    json record = read_record(d);
    record.erase("files");
    write_record(d, record);
    CHECK_THAT(load_error(d), Contains(path) && Contains("cannot load the checkpoint"));
  }
  SECTION("a missing archive") {
    std::filesystem::remove(path);
    CHECK_THAT(load_error(d), Contains(path) && Contains("No such file or directory"));
  }
}

TEST_CASE("a checkpoint written before the checksums existed still loads", "[train][integration]") {
  TempDir dir;
  const std::string d = dir.path().string();
  save_checkpoint(d);
  // state.json as earlier versions wrote it: no "files".
  write_bytes(dir.file("state.json"),
              R"({"step": 1, "model_file": "step-1-model.pt",)"
              R"( "optimizer_file": "step-1-optimizer.pt", "state": {"epochs_done": 1}})");
  torch::nn::Linear linear(3, 2);
  torch::optim::SGD optimizer(linear->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  const auto state = Checkpointer(d).load(*linear, &optimizer);
  REQUIRE(state.has_value());
  CHECK(state->at("epochs_done") == 1);
  CHECK(torch::equal(linear->weight, make_linear()->weight));
  // Without a recorded checksum, the zip's own CRC-32 of each entry is checked.
  const std::string path = dir.file("step-1-model.pt");
  const std::string saved = read_bytes(path);
  write_bytes(path, flip_weight_bit(saved));
  CHECK_THAT(load_error(d), Contains(path) && Contains("damaged archive") &&
                                Contains("CRC-32 mismatch") && Contains("data/0"));
  // An entry whose size in the central directory runs past the file: LibTorch would allocate it.
  std::string oversized = saved;
  const size_t entry = oversized.find("PK\x01\x02");
  REQUIRE(entry != std::string::npos);
  for (size_t i : {20, 24}) oversized.replace(entry + i, 4, "\xff\xff\xff\x7f", 4);
  write_bytes(path, oversized);
  CHECK_THAT(load_error(d), Contains(path) && Contains("out of bounds"));
  // The zip's padding is in no CRC-32: LibTorch reads it as before.
  write_bytes(path, flip_padding(saved));
  CHECK(load_error(d).empty());
}

TEST_CASE("a trainer's own archive beside the checkpoint is checked too", "[train][integration]") {
  TempDir dir;
  const std::string d = dir.path().string();
  torch::nn::Linear linear = make_linear();
  torch::serialize::OutputArchive extra;
  extra.write("weights", torch::full({4}, kWeight));
  neuroflux::write_archive_atomic(dir.file("step-1-optimizers.pt"), extra);
  Checkpointer(d).save(*linear, nullptr, json::object(), 1, {"step-1-optimizers.pt"});
  const auto read_weights = [&] {
    at::Tensor weights;
    Checkpointer(d).read_archive("step-1-optimizers.pt", [&](torch::serialize::InputArchive& a) {
      a.read("weights", weights);
    });
    return weights;
  };
  CHECK(torch::equal(read_weights(), torch::full({4}, kWeight)));
  const std::string path = dir.file("step-1-optimizers.pt");
  write_bytes(path, flip_weight_bit(read_bytes(path)));
  CHECK_THROWS_WITH(read_weights(), Contains(path) && Contains("checksum mismatch"));
  // A file the record has no checksum for, in a record that has checksums.
  CHECK_THROWS_WITH(Checkpointer(d).read_archive("other.pt", [](auto&) {}),
                    Contains(d + "/other.pt") && Contains("no checksum"));
}

TEST_CASE("the fuzz corpus's checkpoints load or are DataErrors, none raw exceptions",
          "[train][integration]") {
  // tests/fuzz/corpus/checkpoint, the inputs of fuzz_checkpoint (seeds and former findings,
  // regress-*), read as the harness reads them, for builds without the fuzz harnesses.
  const std::filesystem::path corpus =
      std::filesystem::path(NEUROFLUX_SOURCE_DIR) / "tests/fuzz/corpus/checkpoint";
  TempDir dir;
  int inputs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(corpus)) {
    const std::string input = read_bytes(entry.path().string());
    INFO(entry.path().filename().string());
    size_t at = 0;
    const auto part = [&](bool rest) {
      size_t n = input.size() - std::min(input.size(), at);
      if (!rest) {
        const size_t len = at + 2 <= input.size()
                               ? static_cast<uint8_t>(input[at]) |
                                     (size_t{static_cast<uint8_t>(input[at + 1])} << 8)
                               : 0;
        at = std::min(input.size(), at + 2);
        n = std::min(len, input.size() - at);
      }
      const std::string bytes = input.substr(at, n);
      at += n;
      return bytes;
    };
    write_bytes(dir.file("state.json"), part(false));
    write_bytes(dir.file("model.pt"), part(false));
    write_bytes(dir.file("optimizer.pt"), part(true));
    torch::nn::Sequential module(torch::nn::Linear(3, 2), torch::nn::BatchNorm1d(2));
    torch::optim::SGD optimizer(module->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
    try {
      Checkpointer(dir.path().string()).load(*module, &optimizer);
    } catch (const neuroflux::DataError& e) {
      CHECK_THAT(e.what(), Contains(dir.path().string()));
    }
    ++inputs;
  }
  CHECK(inputs >= 5);
}
