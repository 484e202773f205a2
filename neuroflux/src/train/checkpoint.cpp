#include "neuroflux/train/checkpoint.h"

#include <fcntl.h>
#include <torch/serialize.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>

#include "util/checksum.h"
#include "util/zip_entries.h"
#include "neuroflux/util/atomic_file.h"
#include "neuroflux/util/errors.h"

namespace neuroflux {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

/// What state.json says of a file: its size and CRC-32 when the file was written.
json checkpoint_file_entry(uint64_t bytes, uint32_t crc) {
  return {{"bytes", bytes}, {"crc32", crc}};
}

/// Writes `archive` to `path` atomically; its entry for state.json, from the bytes as they went
/// to the file (no second pass over it).
json write_checked_archive(const std::string& path, torch::serialize::OutputArchive& archive) {
  uint64_t bytes = 0;
  uint32_t crc = 0;
  write_atomic_bytes(path, [&](const ByteSink& sink) {
    archive.save_to([&](const void* data, size_t n) {
      crc = crc32_of(data, n, crc);
      bytes += n;
      return sink(data, n);
    });
  });
  return checkpoint_file_entry(bytes, crc);
}

/// The entry of a file already on disk, read in pieces.
json checked_file_entry(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw DataError(path + ": cannot open: " + std::strerror(errno));
  uint64_t bytes = 0;
  uint32_t crc = 0;
  char chunk[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int read_errno = errno;
      ::close(fd);
      throw DataError(path + ": cannot read: " + std::strerror(read_errno));
    }
    if (n == 0) break;
    crc = crc32_of(chunk, static_cast<uint64_t>(n), crc);
    bytes += static_cast<uint64_t>(n);
  }
  ::close(fd);
  return checkpoint_file_entry(bytes, crc);
}

/// Checks the fields of a parsed state.json (`path`) that the checkpointer and its callers read,
/// so that a record that parses but is incomplete is a DataError naming the field rather than a
/// JSON exception escaping later.
void check_checkpoint_record(const json& record, const std::string& path) {
  const auto corrupt = [&](const std::string& problem) {
    throw DataError(path + ": corrupt checkpoint state: " + problem);
  };
  if (!record.is_object()) corrupt("not a JSON object");
  const auto field = [&](const char* name) -> const json& {
    const auto it = record.find(name);
    if (it == record.end()) corrupt(std::string("\"") + name + "\" is missing");
    return *it;
  };
  if (!field("model_file").is_string()) corrupt("\"model_file\" is not a string");
  const json& optimizer_file = field("optimizer_file");
  if (!optimizer_file.is_string() && !optimizer_file.is_null())
    corrupt("\"optimizer_file\" is neither a string nor null");
  if (!field("state").is_object()) corrupt("\"state\" is not an object");
  if (record.contains("step") && !record.at("step").is_number_integer())
    corrupt("\"step\" is not an integer");
  // Absent in checkpoints written before the checksums (their zips' own CRC-32s are checked).
  if (!record.contains("files")) return;
  const json& files = record.at("files");
  if (!files.is_object()) corrupt("\"files\" is not an object");
  for (const auto& [name, entry] : files.items()) {
    const std::string where = "\"files\"/\"" + name + "\"";
    if (!entry.is_object()) corrupt(where + " is not an object");
    const auto bytes = entry.find("bytes");
    if (bytes == entry.end() || !bytes->is_number_unsigned())
      corrupt(where + ": \"bytes\" is missing or not a size");
    const auto crc = entry.find("crc32");
    if (crc == entry.end() || !crc->is_number_unsigned() ||
        crc->get<uint64_t>() > std::numeric_limits<uint32_t>::max())
      corrupt(where + ": \"crc32\" is missing or not a CRC-32");
  }
}

/// The content of the checkpoint's file `name` in `dir`, checked against the size and CRC-32 that
/// `record` holds for it (older checkpoints hold none: then against the zip's own CRC-32s), so
/// that LibTorch only ever reads the bytes that were saved. Loading from this one copy, not the
/// path, leaves no window for the file to change between the check and the load.
std::string verified_checkpoint_bytes(const json& record, const std::string& dir,
                                      const std::string& name) {
  const std::string path = dir + "/" + name;
  const json* entry = nullptr;
  if (record.contains("files")) {
    const json& files = record.at("files");
    const auto it = files.find(name);
    if (it == files.end())
      throw DataError(path + ": " + dir + "/state.json lists no checksum for this file");
    entry = &*it;
  }
  const auto mismatch = [&](const std::string& what) {
    return DataError(path +
                     ": checksum mismatch (file changed or damaged since it was written): " + what);
  };
  if (entry != nullptr) {
    // A truncated or grown file is refused before it is read at all.
    const auto recorded = entry->at("bytes").get<uint64_t>();
    std::error_code error;
    const auto size = fs::file_size(path, error);
    if (!error && size != recorded)
      throw mismatch(std::to_string(size) + " bytes, " + std::to_string(recorded) + " written");
  }
  std::string bytes = read_file(path);
  if (entry != nullptr) {
    const auto recorded_bytes = entry->at("bytes").get<uint64_t>();
    if (bytes.size() != recorded_bytes)
      throw mismatch(std::to_string(bytes.size()) + " bytes, " + std::to_string(recorded_bytes) +
                     " written");
    const auto recorded_crc = entry->at("crc32").get<uint32_t>();
    const uint32_t crc = crc32_of(bytes.data(), bytes.size());
    if (crc != recorded_crc)
      throw mismatch("CRC-32 " + std::to_string(crc) + ", " + std::to_string(recorded_crc) +
                     " written");
  } else {
    check_zip_entries(path, bytes);
  }
  return bytes;
}

/// Verifies the checkpoint's file `name`, loads it as a torch archive and calls `read` with it.
/// Whatever LibTorch throws on an archive it cannot read (c10::Error, the TorchScript importer's
/// ErrorReport, std::runtime_error, std::out_of_range, ...) is a DataError naming the file.
void read_checkpoint_archive(const json& record, const std::string& dir, const std::string& name,
                             const std::function<void(torch::serialize::InputArchive&)>& read) {
  const std::string path = dir + "/" + name;
  const std::string bytes = verified_checkpoint_bytes(record, dir, name);
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(bytes.data(), bytes.size());
    read(archive);
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw DataError(path + ": cannot load the checkpoint: " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw DataError(path + ": cannot load the checkpoint: " + e.what());
  }
}

}  // namespace

Checkpointer::Checkpointer(std::string dir) : dir_(std::move(dir)) {
  // A run killed while saving left a temporary here; no later save would ever replace it.
  if (!dir_.empty()) remove_stale_temporaries(dir_);
}

void Checkpointer::save(const torch::nn::Module& module, const torch::optim::Optimizer* optimizer,
                        const json& state, int64_t step, const std::vector<std::string>& files) {
  // The writes create dir_ (a full disk there is a DataError naming it).
  const std::optional<json> previous = peek();
  const std::string tag = "step-" + std::to_string(step);
  const std::string model_file = tag + "-model.pt";
  const std::string optim_file = tag + "-optimizer.pt";
  json checked = json::object();
  torch::serialize::OutputArchive model_archive;
  module.save(model_archive);
  checked[model_file] = write_checked_archive(dir_ + "/" + model_file, model_archive);
  if (optimizer != nullptr) {
    torch::serialize::OutputArchive optim_archive;
    optimizer->save(optim_archive);
    checked[optim_file] = write_checked_archive(dir_ + "/" + optim_file, optim_archive);
  }
  for (const auto& name : files) checked[name] = checked_file_entry(dir_ + "/" + name);
  json record = {{"step", step},
                 {"model_file", model_file},
                 {"optimizer_file", optimizer ? json(optim_file) : json(nullptr)},
                 {"files", checked},
                 {"state", state}};
  write_file_atomic(dir_ + "/state.json", record.dump(2));
  if (previous && previous->value("step", int64_t{-1}) != step) {
    std::error_code ignored;
    fs::remove(dir_ + "/" + previous->at("model_file").get<std::string>(), ignored);
    if (previous->at("optimizer_file").is_string())
      fs::remove(dir_ + "/" + previous->at("optimizer_file").get<std::string>(), ignored);
  }
}

std::optional<json> Checkpointer::peek() const {
  const std::string path = dir_ + "/state.json";
  if (!fs::exists(path)) return std::nullopt;
  json record;
  try {
    record = json::parse(read_file(path));
  } catch (const json::exception& e) {
    throw DataError(path + ": corrupt checkpoint state (" + e.what() + ")");
  }
  check_checkpoint_record(record, path);
  return record;
}

std::optional<json> Checkpointer::load(torch::nn::Module& module,
                                       torch::optim::Optimizer* optimizer) const {
  std::optional<json> record = peek();
  if (!record) return std::nullopt;
  read_checkpoint_archive(*record, dir_, record->at("model_file").get<std::string>(),
                          [&](torch::serialize::InputArchive& archive) { module.load(archive); });
  if (optimizer != nullptr && record->at("optimizer_file").is_string()) {
    read_checkpoint_archive(
        *record, dir_, record->at("optimizer_file").get<std::string>(),
        [&](torch::serialize::InputArchive& archive) { optimizer->load(archive); });
  }
  return record->at("state");
}

void Checkpointer::read_archive(
    const std::string& name,
    const std::function<void(torch::serialize::InputArchive& archive)>& read) const {
  const std::optional<json> record = peek();
  if (!record)
    throw DataError(dir_ + "/" + name + ": no checkpoint in " + dir_ + " to read it from");
  read_checkpoint_archive(*record, dir_, name, read);
}

}  // namespace neuroflux
