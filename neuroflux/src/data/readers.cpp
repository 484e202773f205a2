#include "neuroflux/data/readers.h"

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "data/byte_stream.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/memory/memory_meter.h"

namespace neuroflux::data {
namespace {

using detail::ByteStream;
namespace fs = std::filesystem;

// Pixels are converted to float in slices of this many bytes, so a whole file of raw bytes is never
// held next to its float copy.
constexpr int64_t kConvertSlice = int64_t{1} << 20;
constexpr int64_t kIdxClasses = 10;
constexpr int64_t kMaxSide = int64_t{1} << 15;

std::string hex32(uint32_t value) {
  std::ostringstream out;
  out << "0x" << std::hex;
  out.width(8);
  out.fill('0');
  out << value;
  return out.str();
}

uint32_t big_endian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

[[noreturn]] void throw_truncated(const ByteStream& in, const std::string& expected,
                                  const std::string& ends_after) {
  throw DataError(in.path() + ": truncated at byte " + std::to_string(in.offset()) + ": expected " +
                  expected + ", file ends after " + ends_after + in.cut_off_note());
}

// The first path of `candidates` that exists; otherwise a DataError listing every one tried.
std::string find_file(const std::vector<std::string>& candidates, const std::string& what) {
  for (const auto& path : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(path, ec)) return path;
  }
  std::string tried;
  for (const auto& path : candidates) tried += (tried.empty() ? "" : ", ") + path;
  throw DataError("cannot find " + what + ": tried " + tried);
}

std::vector<std::string> plain_or_gz(const std::vector<std::string>& dirs,
                                     const std::string& name) {
  std::vector<std::string> out;
  for (const auto& dir : dirs) {
    const auto base = (fs::path(dir) / name).string();
    out.push_back(base);
    out.push_back(base + ".gz");
  }
  return out;
}

// Reads `count` bytes into `out` (float32, contiguous, `count` elements) scaled to [0, 1]. Returns
// the number of bytes the file had (< count when it is short; `out` is then partly filled).
int64_t read_pixels(ByteStream& in, float* out, int64_t count) {
  std::vector<uint8_t> buffer(static_cast<size_t>(std::min(count, kConvertSlice)));
  int64_t done = 0;
  while (done < count) {
    const int64_t want = std::min(count - done, kConvertSlice);
    const int64_t got = in.read(buffer.data(), want);
    auto bytes = torch::from_blob(buffer.data(), {got}, torch::kUInt8);
    torch::from_blob(out + done, {got}, torch::kFloat32).copy_(bytes).div_(255.0);
    done += got;
    if (got < want) break;
  }
  return done;
}

// False when the data ends first; the stream's offset then says where.
bool read_exact(ByteStream& in, void* dst, int64_t count) { return in.read(dst, count) == count; }

// An IDX header: magic 0x000008nn (unsigned bytes, nn dimensions), then nn big-endian uint32.
std::vector<int64_t> read_idx_header(ByteStream& in, int ndims, const char* kind) {
  const int64_t header_bytes = 4 + 4 * int64_t{ndims};
  const auto header_text = "a " + std::to_string(header_bytes) + "-byte IDX " + kind + " header";
  std::array<unsigned char, 16> header{};
  // The magic first, so a file of the wrong kind is named as such even when it is short.
  if (!read_exact(in, header.data(), 4)) {
    throw_truncated(in, header_text, std::to_string(in.offset()) + " bytes");
  }
  const uint32_t magic = big_endian32(header.data());
  const uint32_t expected = 0x00000800u | static_cast<uint32_t>(ndims);
  if (magic != expected) {
    std::string hint;
    if ((magic & 0xffffff00u) == 0x00000800u) {
      const uint32_t found_dims = magic & 0xffu;
      hint = "; this is an IDX file with " + std::to_string(found_dims) + " dimension(s)" +
             (found_dims == 1   ? " (a label file?)"
              : found_dims == 3 ? " (an image file?)"
                                : "");
    } else if ((magic & 0xffff0000u) != 0) {
      hint = "; not an IDX file";
    } else {
      hint = "; IDX data of a type other than unsigned bytes";
    }
    throw DataError(in.path() + ": bad magic number " + hex32(magic) + " at byte 0: expected " +
                    hex32(expected) + " (IDX " + kind + ": unsigned bytes, " +
                    std::to_string(ndims) + " dimension" + (ndims == 1 ? "" : "s") + ")" + hint);
  }
  if (!read_exact(in, header.data() + 4, header_bytes - 4)) {
    throw_truncated(in, header_text, std::to_string(in.offset()) + " bytes");
  }
  std::vector<int64_t> dims;
  for (int d = 0; d < ndims; ++d) {
    const int64_t value = big_endian32(header.data() + 4 + 4 * d);
    // Sides beyond 2^15 are no image anyone trains on; bounding them keeps the byte count below
    // 2^62 for any sample count a uint32 can state, so it cannot overflow.
    if (value == 0 || (d > 0 && value > kMaxSide)) {
      throw DataError(in.path() + ": bad dimension " + std::to_string(d) + " at byte " +
                      std::to_string(4 + 4 * d) + ": " + std::to_string(value) + " (expected " +
                      (d == 0 ? "at least 1" : "1 to " + std::to_string(kMaxSide)) + ")");
    }
    dims.push_back(value);
  }
  return dims;
}

void expect_end(ByteStream& in, const std::string& after) {
  const int64_t end = in.offset();
  if (in.has_more()) {
    throw DataError(in.path() + ": unexpected data at byte " + std::to_string(end) +
                    ": expected the file to end after " + after);
  }
}

// First label >= num_classes, as (index, value); index -1 when all are in range.
std::pair<int64_t, int64_t> first_out_of_range(const torch::Tensor& labels, int64_t num_classes) {
  if (labels.numel() == 0 || labels.max().item<int64_t>() < num_classes) return {-1, 0};
  const int64_t index = (labels >= num_classes).nonzero().select(1, 0)[0].item<int64_t>();
  return {index, labels[index].item<int64_t>()};
}

}  // namespace

ImageSet read_idx(const std::string& images_path, const std::string& labels_path) {
  ByteStream images_in(images_path);
  ByteStream labels_in(labels_path);
  const auto image_dims = read_idx_header(images_in, 3, "images");
  const auto label_dims = read_idx_header(labels_in, 1, "labels");
  const int64_t n = image_dims[0], height = image_dims[1], width = image_dims[2];
  if (label_dims[0] != n) {
    throw DataError(labels_path + ": holds " + std::to_string(label_dims[0]) +
                    " labels (count at byte 4) but " + images_path + " holds " + std::to_string(n) +
                    " images: expected one label per image");
  }
  // IDX stores no class count; the sets that use it (MNIST, Fashion-MNIST) have ten.
  const int64_t num_classes = kIdxClasses;

  ImageSet set;
  set.num_classes = num_classes;
  // The data set is host memory outside the device budget.
  UntrackedScope untracked;

  // Labels first: they are small, so a broken pair fails before megabytes of pixels are read.
  const std::string expected_labels = std::to_string(n) + " label bytes after the 8-byte header";
  if (n > labels_in.max_data_bytes()) {
    labels_in.skip_to_end();
    throw_truncated(labels_in, expected_labels, std::to_string(labels_in.offset() - 8));
  }
  std::vector<uint8_t> raw_labels(static_cast<size_t>(n));
  if (!read_exact(labels_in, raw_labels.data(), n)) {
    throw_truncated(labels_in, expected_labels, std::to_string(labels_in.offset() - 8));
  }
  expect_end(labels_in, std::to_string(n) + " labels (byte " + std::to_string(8 + n) + ")");
  set.labels = torch::from_blob(raw_labels.data(), {n}, torch::kUInt8).to(torch::kInt64);
  const auto [bad, value] = first_out_of_range(set.labels, num_classes);
  if (bad >= 0) {
    throw DataError(labels_path + ": label " + std::to_string(value) + " at byte " +
                    std::to_string(8 + bad) + " (sample " + std::to_string(bad) +
                    ") is out of range: expected labels below " + std::to_string(num_classes));
  }

  const int64_t pixels = n * height * width;
  const std::string expected_pixels =
      std::to_string(pixels) + " pixel bytes after the 16-byte header";
  if (pixels > images_in.max_data_bytes()) {
    // The header claims more than the file can hold: say where it really ends without first
    // allocating what the header asks for.
    images_in.skip_to_end();
    throw_truncated(images_in, expected_pixels, std::to_string(images_in.offset() - 16));
  }
  set.images = torch::empty({n, 1, height, width}, torch::kFloat32);
  const int64_t got = read_pixels(images_in, set.images.data_ptr<float>(), pixels);
  if (got < pixels) throw_truncated(images_in, expected_pixels, std::to_string(got));
  expect_end(images_in, std::to_string(n) + " images of " + std::to_string(height) + "x" +
                            std::to_string(width) + " (byte " + std::to_string(16 + pixels) + ")");
  return set;
}

ImageSet read_mnist_like(const std::string& root, bool train) {
  const std::string prefix = train ? "train" : "t10k";
  const auto images =
      find_file(plain_or_gz({root}, prefix + "-images-idx3-ubyte"), "the " + prefix + " images");
  const auto labels =
      find_file(plain_or_gz({root}, prefix + "-labels-idx1-ubyte"), "the " + prefix + " labels");
  return read_idx(images, labels);
}

ImageSet read_cifar(const std::string& root, int num_classes, bool train) {
  if (num_classes != 10 && num_classes != 100) {
    throw std::invalid_argument("read_cifar: num_classes must be 10 or 100, got " +
                                std::to_string(num_classes));
  }
  const bool cifar100 = num_classes == 100;
  const std::vector<std::string> dirs = {
      root, (fs::path(root) / (cifar100 ? "cifar-100-binary" : "cifar-10-batches-bin")).string()};
  std::vector<std::string> names;
  if (cifar100) {
    names.push_back(train ? "train.bin" : "test.bin");
  } else if (train) {
    for (int i = 1; i <= 5; ++i) names.push_back("data_batch_" + std::to_string(i) + ".bin");
  } else {
    names.push_back("test_batch.bin");
  }
  // CIFAR-100 records carry a coarse (20-class) label before the fine one.
  const int64_t label_bytes = cifar100 ? 2 : 1;
  constexpr int64_t kPixelBytes = 3 * 32 * 32;
  const int64_t record = label_bytes + kPixelBytes;
  const std::string record_text = std::to_string(record) + "-byte records (" +
                                  (cifar100 ? "coarse and fine label bytes" : "1 label byte") +
                                  " + 3072 pixel bytes)";

  UntrackedScope untracked;
  // Whole files of raw records, converted once the total is known; CIFAR has no header to say it.
  std::vector<std::vector<uint8_t>> files;
  int64_t total = 0;
  for (const auto& name : names) {
    const auto path =
        find_file(plain_or_gz(dirs, name), (cifar100 ? "CIFAR-100 " : "CIFAR-10 ") + name);
    ByteStream in(path);
    std::vector<uint8_t> bytes;
    if (!in.gzipped()) {
      bytes.resize(static_cast<size_t>(in.file_size()));
      bytes.resize(static_cast<size_t>(in.read(bytes.data(), in.file_size())));
    } else {
      // Unknown length: grow by slices, starting near the file's size and doubling up to
      // 4 MiB (a fixed 4 MiB first slice cost a small file more in zero-filling than in reading).
      int64_t slice = std::clamp<int64_t>(in.file_size() * 4, 64 << 10, kConvertSlice * 4);
      while (true) {
        const size_t before = bytes.size();
        bytes.resize(before + static_cast<size_t>(slice));
        const int64_t got = in.read(bytes.data() + before, slice);
        bytes.resize(before + static_cast<size_t>(got));
        if (got < slice) break;
        slice = std::min(slice * 2, kConvertSlice * 4);
      }
    }
    const auto size = static_cast<int64_t>(bytes.size());
    if (size == 0 || size % record != 0) {
      const int64_t whole = size / record;
      throw_truncated(in, record_text,
                      size == 0 ? std::string("0 bytes")
                                : std::to_string(size % record) + " bytes of record " +
                                      std::to_string(whole) + " (which starts at byte " +
                                      std::to_string(whole * record) + ")");
    }
    const int64_t count = size / record;
    auto records = torch::from_blob(bytes.data(), {count, record}, torch::kUInt8);
    for (int64_t column = 0; column < label_bytes; ++column) {
      const int64_t limit = (cifar100 && column == 0) ? 20 : num_classes;
      const auto [bad, value] = first_out_of_range(records.select(1, column), limit);
      if (bad >= 0) {
        throw DataError(path + ": " + (cifar100 ? (column == 0 ? "coarse " : "fine ") : "") +
                        "label " + std::to_string(value) + " at byte " +
                        std::to_string(bad * record + column) + " (record " + std::to_string(bad) +
                        ") is out of range: expected labels below " + std::to_string(limit));
      }
    }
    total += count;
    files.push_back(std::move(bytes));
  }

  ImageSet set;
  set.num_classes = num_classes;
  set.images = torch::empty({total, 3, 32, 32}, torch::kFloat32);
  set.labels = torch::empty({total}, torch::kInt64);
  auto flat_images = set.images.view({total, kPixelBytes});
  int64_t start = 0;
  for (auto& bytes : files) {
    const auto count = static_cast<int64_t>(bytes.size()) / record;
    auto records = torch::from_blob(bytes.data(), {count, record}, torch::kUInt8);
    set.labels.narrow(0, start, count).copy_(records.select(1, label_bytes - 1));
    flat_images.narrow(0, start, count).copy_(records.narrow(1, label_bytes, kPixelBytes));
    start += count;
    std::vector<uint8_t>().swap(bytes);  // release each file as soon as it is converted
  }
  set.images.div_(255.0);
  return set;
}

}  // namespace neuroflux::data
