#include "neuroflux/config/config.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "config/json_reader.h"
#include "neuroflux/util/errors.h"

namespace neuroflux {

using config_detail::JsonReader;
using nlohmann::json;

namespace {

const std::vector<std::string> kModels = {"vgg11",    "vgg16",    "vgg19",      "resnet18",
                                          "resnet34", "mobilenetv2", "simplecnn"};
const std::vector<std::string> kDataSets = {"fashion-mnist", "mnist", "cifar10", "cifar100",
                                            "synthetic", "image_folder"};

// "cpu", "cuda" or "cuda:N": anything else ("cudax", "cuda:r") would pass here and fail later as
// LibTorch's own error about the device string.
bool is_device_name(const std::string& d) {
  if (d == "cpu" || d == "cuda") return true;
  return d.size() > 5 && d.size() <= 8 && d.compare(0, 5, "cuda:") == 0 &&
         d.find_first_not_of("0123456789", 5) == std::string::npos;
}

void read_model(JsonReader r, ModelConfig& m) {
  r.choice("name", m.name, kModels);
  r.number("width", m.width, 0.0, 64.0, /*min_open=*/true);
  r.boolean("batch_norm", m.batch_norm);
  r.integer("in_channels", m.in_channels, 0);
  r.integer("num_classes", m.num_classes, 0);
  r.choice("activations", m.activations, {"dense", "bitmap"});
  m.row_centric.enabled = r.has("row_centric");
  JsonReader rc = r.section("row_centric");
  rc.integer_or_word("stripes", m.row_centric.stripes, "auto", 0);
  rc.choice("scheme", m.row_centric.scheme, {"overlap", "two_phase"});
  rc.finish();
  r.finish();
}

void read_data(JsonReader r, DataConfig& d) {
  r.choice("name", d.name, kDataSets);
  r.string("root", d.root);
  r.number("val_fraction", d.val_fraction, 0.0, 0.9, false);
  r.integer("train_limit", d.train_limit, 0);
  r.integer("test_limit", d.test_limit, 0);
  r.boolean("augment", d.augment);
  r.integer_or_word("image_size", d.image_size, "auto", 0);
  r.integer_or_word("channels", d.channels, "auto", 0);
  r.number("test_fraction", d.test_fraction, 0.0, 0.9, /*min_open=*/true);
  r.boolean("skip_bad_images", d.skip_bad_images);
  r.string("cache_dir", d.cache_dir);
  r.integer("num_classes", d.num_classes, 2);
  r.integer("train_size", d.train_size, 1);
  r.integer("test_size", d.test_size, 1);
  r.finish();
}

void read_memory(JsonReader r, MemoryConfig& m) {
  r.size("budget", m.budget);
  r.choice("strategy", m.strategy, {"none", "checkpoint", "checkpoint_sqrt", "offload"});
  r.string("offload_dir", m.offload_dir);
  r.choice("optimizer_state", m.optimizer_state, {"device", "host"});
  r.finish();
}

void read_train(JsonReader r, TrainConfig& t) {
  r.integer("epochs", t.epochs, 1);
  r.integer_or_word("batch_size", t.batch_size, "auto", 0);
  r.integer("max_batch_size", t.max_batch_size, 1);
  r.integer("eval_batch_size", t.eval_batch_size, 0);
  r.choice("optimizer", t.optimizer, {"sgd", "adam"});
  r.number("lr", t.lr, 0.0, 100.0, true);
  r.integer("lr_reference_batch", t.lr_reference_batch, 0);
  r.number("momentum", t.momentum, 0.0, 0.999, false);
  r.number("weight_decay", t.weight_decay, 0.0, 1.0, false);
  r.choice("schedule", t.schedule, {"cosine", "step", "constant"});
  r.integer("step_size", t.step_size, 0);
  r.number("gamma", t.gamma, 0.0, 1.0, true);
  r.boolean("fused_update", t.fused_update);
  r.number("warmup_epochs", t.warmup_epochs, 0.0, 1000.0, /*min_open=*/false);
  // A warm-up as long as the run would never reach the rate; a NeuroFlux block shorter than
  // twice the warm-up is shortened (optim/optim.h), but the whole run must have room.
  if (t.warmup_epochs >= static_cast<double>(t.epochs))
    r.fail("warmup_epochs", "expected fewer than /train/epochs (" + std::to_string(t.epochs) +
                                ") epochs, got " + config_detail::describe(t.warmup_epochs));
  r.finish();
}

void read_neuroflux(JsonReader r, NeuroFluxConfig& n) {
  r.choice("aux", n.aux, {"adaptive", "fixed", "deep", "copies"});
  r.integer("aux_width", n.aux_width, 1);
  r.integer("aux_depth", n.aux_depth, 0);
  r.integer_or_words("module_units", n.module_units, {{"stage", 0}, {"auto", -1}});
  r.choice("local_loss", n.local_loss, {"ce", "ce+sim", "ce+recon", "ce+sim+recon"});
  r.number("sim_weight", n.sim_weight, 0.0, 1000.0, true);
  r.number("recon_weight", n.recon_weight, 0.0, 1000.0, true);
  r.number("aux_memory_fraction", n.aux_memory_fraction, 0.0, 1.0, true);
  r.number("aux_compute_fraction", n.aux_compute_fraction, 0.0, 1.0, true);
  r.integer("block_patience", n.block_patience, 1);
  r.number("block_min_delta", n.block_min_delta, 0.0, 1.0, false);
  r.number("exit_tolerance", n.exit_tolerance, 0.0, 1.0, false);
  r.boolean("progressive_exit", n.progressive_exit);
  r.integer("exit_patience", n.exit_patience, 1);
  r.number("shallow_epoch_fraction", n.shallow_epoch_fraction, 0.0, 1.0, true);
  r.choice("unit_modes", n.unit_modes, {"auto", "plain"});
  r.choice("block_threads", n.block_threads, {"run", "auto"});
  r.string("plan", n.plan_file);
  r.boolean("exit_ensemble", n.exit_ensemble);
  JsonReader cache = r.section("cache");
  cache.choice("where", n.cache_where, {"host", "disk"});
  cache.choice("dtype", n.cache_dtype, {"float32", "float16"});
  cache.string("dir", n.cache_dir);
  cache.finish();
  r.finish();
}

}  // namespace

Config Config::from_json(const json& value) {
  Config c;
  JsonReader r(value, "");
  r.choice("method", c.method, {"backprop", "local", "neuroflux"});
  r.string("device", c.device);
  if (!is_device_name(c.device))
    r.fail("device", "expected \"cpu\", \"cuda\" or \"cuda:N\", got \"" + c.device + "\"");
  r.integer("seed", c.seed, 0);
  r.integer_or_word("threads", c.threads, "auto", 0);
  read_model(r.section("model"), c.model);
  read_data(r.section("data"), c.data);
  read_memory(r.section("memory"), c.memory);
  if (c.model.row_centric.enabled && c.model.row_centric.stripes == 0 && !c.memory.budget) {
    throw ConfigError("/model/row_centric/stripes: \"auto\" picks the largest stripe under "
                      "/memory/budget, which is not set");
  }
  read_train(r.section("train"), c.train);
  read_neuroflux(r.section("neuroflux"), c.neuroflux);
  JsonReader bench = r.section("bench");
  bench.number("target_accuracy", c.bench.target_accuracy, 0.0, 1.0, false);
  bench.finish();
  JsonReader distributed = r.section("distributed");
  distributed.choice("mode", c.distributed.mode, {"data", "pipeline"});
  distributed.number("timeout", c.distributed.timeout, 0.0, 86400.0, /*min_open=*/true);
  std::optional<int64_t> bucket = c.distributed.bucket_bytes;
  distributed.size("bucket_bytes", bucket);
  if (!bucket || *bucket < 1024)
    distributed.fail("bucket_bytes", "expected a size of at least 1KiB");
  c.distributed.bucket_bytes = *bucket;
  distributed.integer("micro_batches_in_flight", c.distributed.micro_batches_in_flight, 1);
  if (c.distributed.mode == "pipeline" && c.method == "backprop")
    distributed.fail("mode", "\"pipeline\" needs method \"local\" or \"neuroflux\" (backprop "
                             "sends gradients across blocks)");
  distributed.finish();
  JsonReader output = r.section("output");
  output.string("dir", c.output.dir);
  output.finish();
  r.finish();
  if (c.memory.strategy != "none" && c.method != "backprop")
    throw ConfigError("/memory/strategy: \"" + c.memory.strategy +
                      "\" applies to method backprop (local and neuroflux free activations "
                      "unit by unit already), not " + c.method);
  if ((c.memory.strategy == "checkpoint" || c.memory.strategy == "offload") && !c.memory.budget)
    throw ConfigError("/memory/strategy: \"" + c.memory.strategy +
                      "\" chooses what to keep under memory.budget, which is not set");
  if (c.neuroflux.module_units != 1 && c.model.row_centric.enabled)
    throw ConfigError("/neuroflux/module_units: row-centric execution runs single conv-stack "
                      "units; with /model/row_centric keep one unit per module (1)");
  if (c.train.fused_update && c.model.row_centric.enabled)
    throw ConfigError("/train/fused_update: updates each weight when its gradient is complete, "
                      "but /model/row_centric adds a layer's weight gradient stripe by stripe, "
                      "one partial gradient per stripe; turn one of them off");
  if (c.train.max_batch_size < c.train.batch_size)
    throw ConfigError("/train/max_batch_size: " + std::to_string(c.train.max_batch_size) +
                      " is below /train/batch_size " + std::to_string(c.train.batch_size));
  return c;
}

json Config::read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot open the config file");
  std::stringstream text;
  text << in.rdbuf();
  return parse_json_text(text.str(), path);
}

json Config::parse_json_text(const std::string& text, const std::string& source) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    // e.byte is the 1-based offset of the error; turn it into line:column for people.
    size_t line = 1, column = 1;
    for (size_t i = 0; i + 1 < e.byte && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    throw ConfigError(source + ":" + std::to_string(line) + ":" + std::to_string(column) +
                      ": not valid JSON (" + e.what() + ")");
  } catch (const json::out_of_range& e) {
    // A number past double's range (1e400) is out_of_range, not a parse_error.
    throw ConfigError(source + ": not valid JSON (" + e.what() + ")");
  }
}

void Config::apply_overrides(json& value, const std::vector<std::string>& overrides) {
  for (const auto& item : overrides) {
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw ConfigError("--set " + item + ": expected key.path=value");
    const std::string key = item.substr(0, eq);
    const std::string text = item.substr(eq + 1);
    json parsed;
    try {
      parsed = json::parse(text);
    } catch (const json::exception&) {
      // Bare words are strings: --set model.name=vgg16. So is what JSON cannot hold (1e400, an
      // out_of_range rather than a parse_error): the key's own check then refuses it.
      parsed = text;
    }
    json* node = &value;
    std::string pointer;
    std::stringstream parts(key);
    std::string part;
    std::vector<std::string> path;
    while (std::getline(parts, part, '.')) path.push_back(part);
    for (size_t i = 0; i < path.size(); ++i) {
      pointer += "/" + path[i];
      if (path[i].empty()) throw ConfigError("--set " + item + ": empty key in " + key);
      if (node->is_null()) *node = json::object();
      if (!node->is_object())
        throw ConfigError("--set " + item + ": " + pointer + " is not an object");
      node = &(*node)[path[i]];
    }
    *node = parsed;
  }
}

json Config::to_json() const {
  json budget = memory.budget ? json(*memory.budget) : json(nullptr);
  return {
      {"method", method},
      {"device", device},
      {"seed", seed},
      {"threads", threads == 0 ? json("auto") : json(threads)},
      {"model",
       {{"name", model.name}, {"width", model.width}, {"batch_norm", model.batch_norm},
        {"in_channels", model.in_channels}, {"num_classes", model.num_classes},
        {"activations", model.activations},
        {"row_centric",
         model.row_centric.enabled
             ? json{{"stripes", model.row_centric.stripes == 0 ? json("auto")
                                                               : json(model.row_centric.stripes)},
                    {"scheme", model.row_centric.scheme}}
             : json(nullptr)}}},
      {"data",
       {{"name", data.name}, {"root", data.root}, {"val_fraction", data.val_fraction},
        {"train_limit", data.train_limit}, {"test_limit", data.test_limit},
        {"augment", data.augment},
        {"image_size", data.image_size == 0 ? json("auto") : json(data.image_size)},
        {"channels", data.channels == 0 ? json("auto") : json(data.channels)},
        {"test_fraction", data.test_fraction}, {"skip_bad_images", data.skip_bad_images},
        {"cache_dir", data.cache_dir}, {"num_classes", data.num_classes},
        {"train_size", data.train_size}, {"test_size", data.test_size}}},
      {"memory", {{"budget", budget}, {"strategy", memory.strategy}, {"offload_dir", memory.offload_dir},
                  {"optimizer_state", memory.optimizer_state}}},
      {"train",
       {{"epochs", train.epochs},
        {"batch_size", train.batch_size == 0 ? json("auto") : json(train.batch_size)},
        {"max_batch_size", train.max_batch_size}, {"eval_batch_size", train.eval_batch_size},
        {"optimizer", train.optimizer}, {"lr", train.lr},
        {"lr_reference_batch", train.lr_reference_batch}, {"momentum", train.momentum},
        {"weight_decay", train.weight_decay}, {"schedule", train.schedule},
        {"step_size", train.step_size}, {"gamma", train.gamma},
        {"fused_update", train.fused_update}, {"warmup_epochs", train.warmup_epochs}}},
      {"neuroflux",
       {{"aux", neuroflux.aux}, {"aux_width", neuroflux.aux_width},
        {"aux_depth", neuroflux.aux_depth},
        {"module_units",
         neuroflux.module_units == 0    ? json("stage")
         : neuroflux.module_units == -1 ? json("auto")
                                        : json(neuroflux.module_units)},
        {"local_loss", neuroflux.local_loss}, {"sim_weight", neuroflux.sim_weight},
        {"recon_weight", neuroflux.recon_weight},
        {"aux_memory_fraction", neuroflux.aux_memory_fraction},
        {"aux_compute_fraction", neuroflux.aux_compute_fraction},
        {"block_patience", neuroflux.block_patience},
        {"block_min_delta", neuroflux.block_min_delta},
        {"exit_tolerance", neuroflux.exit_tolerance},
        {"progressive_exit", neuroflux.progressive_exit},
        {"exit_patience", neuroflux.exit_patience},
        {"shallow_epoch_fraction", neuroflux.shallow_epoch_fraction},
        {"unit_modes", neuroflux.unit_modes},
        {"block_threads", neuroflux.block_threads},
        {"plan", neuroflux.plan_file},
        {"exit_ensemble", neuroflux.exit_ensemble},
        {"cache",
         {{"where", neuroflux.cache_where}, {"dtype", neuroflux.cache_dtype},
          {"dir", neuroflux.cache_dir}}}}},
      {"bench", {{"target_accuracy", bench.target_accuracy}}},
      {"distributed",
       {{"mode", distributed.mode}, {"timeout", distributed.timeout},
        {"bucket_bytes", distributed.bucket_bytes},
        {"micro_batches_in_flight", distributed.micro_batches_in_flight}}},
      {"output", {{"dir", output.dir}}},
  };
}

}  // namespace neuroflux
