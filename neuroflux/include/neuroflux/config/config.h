// The run configuration: a validated value built from JSON (configs/*.json plus --set overrides).
// Every key is documented in README.md. Unknown keys and wrong types are ConfigErrors naming the
// JSON pointer of the bad value.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace neuroflux {

/// model.row_centric: run the conv stacks stripe by stripe (<neuroflux/rowcentric/row_centric.h>).
/// Absent or null = off.
struct RowCentricConfig {
  bool enabled = false;
  int64_t stripes = 8;                 ///< 0 = "auto": largest band under memory.budget
  std::string scheme = "overlap";      ///< overlap|two_phase
};

struct ModelConfig {
  std::string name = "vgg11";       ///< vgg11|vgg16|vgg19|resnet18|resnet34|mobilenetv2|simplecnn
  double width = 1.0;               ///< channel multiplier
  bool batch_norm = true;
  int64_t in_channels = 0;          ///< 0: taken from the data set
  int64_t num_classes = 0;          ///< 0: taken from the data set
  std::string activations = "dense";  ///< dense|bitmap (saved post-ReLU activations)
  RowCentricConfig row_centric;
};

struct DataConfig {
  /// fashion-mnist|mnist|cifar10|cifar100|synthetic|image_folder
  std::string name = "fashion-mnist";
  std::string root;                    ///< "" = the data set's default location
  double val_fraction = 0.1;           ///< share of the training set held out, by seed
  int64_t train_limit = 0;             ///< use only the first N training samples (0 = all)
  int64_t test_limit = 0;              ///< use only the first N test samples (0 = all)
  bool augment = false;                ///< random crop (padding 4 for 32px, 2 for 28px) + flip
  // Synthetic data and image_folder. 0 = "auto": synthetic makes 32 px, 3 channels; an image
  // folder keeps its images' own size (which must then agree) and is grey only when every
  // image is.
  int64_t image_size = 0;              ///< image_folder: shorter side resized, then centre-cropped
  int64_t channels = 0;                ///< image_folder: 1 (luminance) or 3 (grey replicated)
  // image_folder only.
  double test_fraction = 0.2;          ///< held out for testing from a folder with no test/
  bool skip_bad_images = false;        ///< skip unreadable images with a warning (else exit 3)
  std::string cache_dir;               ///< decoded images; "" = OUT/data-cache
  // Synthetic data only.
  int64_t num_classes = 10;
  int64_t train_size = 2048;
  int64_t test_size = 512;
};

struct MemoryConfig {
  std::optional<int64_t> budget;       ///< bytes; nullopt = unbounded
  /// Backprop only: none | checkpoint (optimal recomputation) | checkpoint_sqrt (every
  /// sqrt(n) units) | offload (checkpoints kept in host memory, prefetched back).
  std::string strategy = "none";
  std::string offload_dir;             ///< offload's temporary files ("" = $TMPDIR or /tmp)
  /// device | host: where the optimizer state (momentum buffers, Adam's moments) lives. "host"
  /// keeps it in host memory outside the budget and updates it there (any method and strategy).
  std::string optimizer_state = "device";
};

struct TrainConfig {
  int64_t epochs = 10;
  int64_t batch_size = 128;            ///< 0 = "auto": largest that fits memory.budget
  int64_t max_batch_size = 256;
  int64_t eval_batch_size = 0;         ///< 0 = same as the training batch (for local/backprop)
  std::string optimizer = "sgd";       ///< sgd|adam
  double lr = 0.05;
  /// The batch `lr` is tuned for: a batch chosen for the run ("auto", or a NeuroFlux block's)
  /// scales the rate linearly from it (scaled_lr). 0 = train.batch_size, or 128 when "auto".
  int64_t lr_reference_batch = 0;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  std::string schedule = "cosine";     ///< cosine|step|constant
  int64_t step_size = 0;               ///< step schedule: epochs per decay (0 = epochs / 3)
  double gamma = 0.1;                  ///< step schedule: decay factor
  /// Linear warm-up from about 0 to the rate over this many epochs (fractions allowed), then
  /// the schedule over the rest, updated every batch (optim/optim.h). Every NeuroFlux block
  /// warms up and anneals over its own epochs. 0 = none: the rate changes once per epoch.
  double warmup_epochs = 0;
  /// Update each parameter as soon as its gradient is complete during backward, and free that
  /// gradient (LOMO): about one layer's gradient is alive instead of all. Not with data-parallel
  /// ranks (gradients are all-reduced after backward) nor row-centric units (their stripes add
  /// partial gradients).
  bool fused_update = false;
};

struct NeuroFluxConfig {
  std::string aux = "adaptive";        ///< adaptive|fixed|deep|copies (local/aux_head.h)
  int64_t aux_width = 64;              ///< fixed heads' width (and local learning's)
  /// copies heads: the most units a head copies (at the first unit, falling linearly with
  /// depth); 0 = every unit after the first.
  int64_t aux_depth = 0;
  /// Units per gradient-isolated module (models/unit_groups.h); 0 = "stage": one module per
  /// resolution stage; -1 = "auto": NeuroFlux's planner chooses (local learning: "stage").
  int64_t module_units = 1;
  /// What each unit learns from (local/local_loss.h): ce | ce+sim | ce+recon | ce+sim+recon,
  /// the terms weighted at the first unit by sim_weight and recon_weight and faded with depth.
  std::string local_loss = "ce";
  double sim_weight = 1.0;
  double recon_weight = 1.0;
  double aux_memory_fraction = 0.25;
  double aux_compute_fraction = 0.2;
  int64_t block_patience = 2;
  double block_min_delta = 0.002;
  double exit_tolerance = 0.005;
  bool progressive_exit = true;
  /// Progressive exit waits for this many blocks in a row that did not raise the best head:
  /// a shallow head's validation accuracy swings by several points between epochs, so one
  /// block that fell short is weak evidence that depth has stopped helping.
  int64_t exit_patience = 2;
  /// FreezeOut's schedule (Brock et al. 2017) over depth: the first unit trains this share of
  /// train.epochs, the last unit all of them, linearly in between; a block trains as many epochs
  /// as its deepest unit. Shallow features settle early, and their blocks are the costliest.
  double shallow_epoch_fraction = 0.5;
  /// "auto": the planner may run a unit recomputed or row-centric (local/unit_step.h) where that
  /// lets its block take a batch that trains faster, or fit at all; "plain": never.
  std::string unit_modes = "auto";
  /// "auto": the profiler also measures each unit's step at fewer intra-op threads, and the
  /// planner may train a block with fewer (on the CPU, ATen's per-thread scratch grows a step's
  /// peak with the thread count) where that fits it or trains it faster; "run": every block
  /// uses `threads`.
  std::string block_threads = "run";
  std::string cache_where = "host";    ///< host|disk
  std::string cache_dtype = "float16"; ///< float32|float16
  std::string cache_dir;               ///< "" = OUT/cache
  std::string plan_file;               ///< "" = profile and plan; else a plan.json to follow
  /// Export the chosen exit averaged with the next deeper one when the pair is the better
  /// candidate (exit/exit_ensemble.h); local learning: its last two heads.
  bool exit_ensemble = false;
};

struct BenchConfig {
  double target_accuracy = 0;          ///< 0 = 0.98 x the best final validation accuracy
};

/// Scale-out over several processes (README "Distributed training"); applies when the job has
/// more than one rank.
struct DistributedConfig {
  std::string mode = "data";           ///< data|pipeline (pipeline: local and neuroflux only)
  double timeout = 120;                ///< seconds a rank waits for another before failing
  int64_t bucket_bytes = 1 << 20;      ///< data mode: gradient bytes all-reduced together
  int64_t micro_batches_in_flight = 1; ///< pipeline: micro-batches queued between two stages
};

struct OutputConfig {
  std::string dir = "runs/default";
};

struct Config {
  std::string method = "backprop";     ///< backprop|local|neuroflux
  std::string device = "cpu";          ///< cpu|cuda|cuda:N
  int64_t seed = 0;
  int64_t threads = 0;                 ///< intra-op threads; 0 = all cores
  ModelConfig model;
  DataConfig data;
  MemoryConfig memory;
  TrainConfig train;
  NeuroFluxConfig neuroflux;
  BenchConfig bench;
  DistributedConfig distributed;
  OutputConfig output;

  /// Validates and builds a Config; `source` names the origin in messages (a file name).
  static Config from_json(const nlohmann::json& json);
  /// Reads a JSON file (the error names the file, line and column of a syntax error).
  static nlohmann::json read_json_file(const std::string& path);
  /// Parses a config's text; `source` names it in the error (file:line:column).
  static nlohmann::json parse_json_text(const std::string& text, const std::string& source);
  /// Applies "key.path=value" overrides; the value is parsed as JSON, or taken as a string.
  static void apply_overrides(nlohmann::json& json, const std::vector<std::string>& overrides);
  /// The full configuration, defaults included, so a run records exactly what it ran.
  nlohmann::json to_json() const;
};

}  // namespace neuroflux
