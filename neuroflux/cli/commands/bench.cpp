// `neuroflux bench`: every method side by side under one budget, each as its own process (so one
// method's memory or allocator state never leaks into another's measurement), on the same data,
// seed and epoch budget. Writes DIR/bench.json and DIR/bench.md and prints a short table.
// A method that does not fit the budget is a measurement (a row saying so), not a failure: the
// command exits non-zero only when some method could not be measured.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "bench_table.h"
#include "commands.h"
#include "config_args.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/exit/exported_model.h"
#include "neuroflux/report/report.h"
#include "neuroflux/util/size_format.h"
#include "neuroflux/train/evaluate.h"
#include "neuroflux/train/run.h"
#include "neuroflux/util/atomic_file.h"
#include "neuroflux/util/progress.h"

namespace neuroflux::cli {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

/// "method+variant+variant" -> the method and the --set overrides the variants stand for.
std::pair<std::string, std::vector<std::string>> expand_method(const std::string& spec) {
  static const std::map<std::string, std::vector<std::string>> variants = {
      {"bitmap", {"model.activations=bitmap"}},
      {"fixed", {"neuroflux.aux=fixed"}},
      {"adaptive", {"neuroflux.aux=adaptive"}},
      {"deep", {"neuroflux.aux=deep"}},
      {"copies", {"neuroflux.aux=copies"}},
      {"ensemble", {"neuroflux.exit_ensemble=true"}},
      {"warmup", {"train.warmup_epochs=1"}},
      {"stage", {"neuroflux.module_units=\"stage\""}},
      {"module2", {"neuroflux.module_units=2"}},
      {"sim", {"neuroflux.local_loss=\"ce+sim\""}},
      {"recon", {"neuroflux.local_loss=\"ce+recon\""}},
      {"simrecon", {"neuroflux.local_loss=\"ce+sim+recon\""}},
      {"disk", {"neuroflux.cache.where=disk"}},
      {"fp32cache", {"neuroflux.cache.dtype=float32"}},
      {"noexit", {"neuroflux.progressive_exit=false"}},
      {"auto", {"train.batch_size=\"auto\""}},
      {"checkpoint", {"memory.strategy=\"checkpoint\""}},
      {"checkpoint_sqrt", {"memory.strategy=\"checkpoint_sqrt\""}},
      {"offload", {"memory.strategy=\"offload\""}},
  };
  std::stringstream parts(spec);
  std::string method, part;
  std::getline(parts, method, '+');
  if (method != "backprop" && method != "local" && method != "neuroflux")
    throw ConfigError("--methods: unknown method '" + method + "' in '" + spec +
                      "' (backprop, local, neuroflux)");
  // The memory strategy is a variant too (backprop+checkpoint), so a config's own strategy does
  // not leak into the methods it does not apply to.
  std::vector<std::string> sets = {"method=" + method, "memory.strategy=\"none\""};
  while (std::getline(parts, part, '+')) {
    auto it = variants.find(part);
    if (it == variants.end()) {
      std::string known;
      for (const auto& [name, _] : variants) known += (known.empty() ? "" : ", ") + name;
      throw ConfigError("--methods: unknown variant '" + part + "' in '" + spec + "' (" + known + ")");
    }
    sets.insert(sets.end(), it->second.begin(), it->second.end());
  }
  return {method, sets};
}

/// Where a method's run goes: "+" in variant names is not a friendly path character.
std::string method_dir(const std::string& out, const std::string& method) {
  std::string dir = out + "/" + method;
  for (char& c : dir) if (c == '+') c = '_';
  return dir;
}

/// Runs `neuroflux train` as a child process, its stdout and stderr into `log_path`; returns its
/// exit code.
int run_child(const std::vector<std::string>& args, const std::string& log_path) {
  std::string self = fs::read_symlink("/proc/self/exe").string();
  const pid_t pid = ::fork();
  if (pid < 0) throw Error("bench: fork failed");
  if (pid == 0) {
    // The child's own summary and logs go to its log: the bench's output is its table.
    if (std::freopen(log_path.c_str(), "w", stderr) != nullptr) ::dup2(STDERR_FILENO, STDOUT_FILENO);
    std::vector<char*> argv;
    argv.push_back(self.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(self.c_str(), argv.data());
    std::_Exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/// The child's own error line ("neuroflux: error: ..."), the last one in its log.
std::string error_in_log(const std::string& log_path) {
  std::ifstream log(log_path);
  std::string line, found;
  const std::string marker = "neuroflux: error: ";
  while (std::getline(log, line)) {
    const auto at = line.find(marker);
    if (at != std::string::npos) found = line.substr(at + marker.size());
  }
  return found;
}

/// Running best validation accuracy over the history reaches `target` first at these seconds.
json time_to_target(const Report& r, double target) {
  double best = 0;
  for (const auto& h : r.history) {
    best = std::max(best, h.val_accuracy);
    if (best >= target) return h.seconds;
  }
  return nullptr;
}

double inference_rate(const std::string& model_path, const Config& config) {
  torch::NoGradGuard no_grad;
  ExportDescription description;
  auto network = load_exported(model_path, &description);
  network->eval();
  const c10::Device device = parse_device(config.device);
  network->to(device);
  const int64_t batch = 256;
  std::vector<int64_t> shape{batch};
  shape.insert(shape.end(), description.input_shape.begin(), description.input_shape.end());
  const at::Tensor x = torch::randn(shape, torch::TensorOptions(device));
  network->forward(x);  // warm
  Stopwatch watch;
  int64_t images = 0;
  while (watch.seconds() < 1.0 || images < 4 * batch) {
    network->forward(x);
    images += batch;
  }
  return static_cast<double>(images) / watch.seconds();
}

}  // namespace

int bench_command(const Args& args) {
  cxxopts::Options options("neuroflux bench",
                           "Run several methods under one budget, each in its own process, and "
                           "compare them (DIR/bench.json, DIR/bench.md).");
  add_config_options(options);
  options.add_options()("methods", "comma-separated methods, with +variants "
                                   "(backprop,local,neuroflux,neuroflux+fixed,...)",
                        cxxopts::value<std::string>()->default_value("backprop,local,neuroflux"))(
      "resume", "skip methods whose report.json already exists");
  const auto parsed = parse_args(options, args);
  if (parsed.count("help") != 0) {
    const std::vector<Example> examples = {
        {"backprop against NeuroFlux under 16 MiB",
         "neuroflux bench --config configs/quickstart.json --set memory.budget=16MiB "
         "--methods backprop,neuroflux --out runs/bench"},
        {"with variants: recomputation for backprop, deep heads for NeuroFlux",
         "neuroflux bench --config configs/vgg11-fmnist.json --set memory.budget=16MiB "
         "--methods backprop,backprop+checkpoint,local,neuroflux,neuroflux+deep "
         "--out runs/bench-vgg11"},
        {"rerun only the methods that have no report.json yet",
         "neuroflux bench --config configs/vgg11-fmnist.json --set memory.budget=16MiB "
         "--out runs/bench-vgg11 --resume"}};
    std::cout << help_text(options, examples) << std::endl;
    return 0;
  }
  const Config base = load_config(parsed);
  const std::string out = base.output.dir;
  prepare_output_directory(out);
  std::vector<std::string> methods;
  {
    std::stringstream list(parsed["methods"].as<std::string>());
    std::string m;
    while (std::getline(list, m, ',')) {
      if (m.empty()) continue;
      expand_method(m);  // validate all before running any
      methods.push_back(m);
    }
  }
  if (methods.empty()) throw ConfigError("--methods: no method given");

  std::vector<std::string> passthrough;
  if (parsed.count("set") != 0) passthrough = parsed["set"].as<std::vector<std::string>>();
  const std::string config_path = parsed["config"].as<std::string>();

  struct Row {
    std::string name;
    std::optional<Report> report;
    int exit_code = 0;
    std::string error;  ///< the child's error message, when it failed
  };
  std::vector<Row> rows;
  for (size_t i = 0; i < methods.size(); ++i) {
    const std::string& name = methods[i];
    const auto [method, sets] = expand_method(name);
    const std::string dir = method_dir(out, name);
    Row row{name, std::nullopt, 0, ""};
    if (!(parsed.count("resume") != 0 && fs::exists(dir + "/report.json"))) {
      std::vector<std::string> child = {"train", "--config", config_path, "--out", dir};
      for (const auto& s : passthrough) child.insert(child.end(), {"--set", s});
      // Whole-network methods take the largest batch that fits the budget, as a user would.
      if (method != "neuroflux" && base.memory.budget)
        child.insert(child.end(), {"--set", "train.batch_size=\"auto\""});
      for (const auto& s : sets) child.insert(child.end(), {"--set", s});
      if (parsed.count("threads") != 0)
        child.insert(child.end(), {"--threads", std::to_string(parsed["threads"].as<int64_t>())});
      fs::create_directories(dir);
      log_line("bench " + std::to_string(i + 1) + "/" + std::to_string(methods.size()) + ": " +
               name + " (log: " + dir + "/train.log)");
      row.exit_code = run_child(child, dir + "/train.log");
    }
    if (row.exit_code == 0 && fs::exists(dir + "/report.json"))
      row.report = Report::from_json(json::parse(read_file(dir + "/report.json")));
    else {
      row.error = error_in_log(dir + "/train.log");
      log_line("bench: " + name +
               (row.exit_code == static_cast<int>(ExitCode::kOverBudget) ? " does not fit"
                                                                          : " failed") +
               " (exit " + std::to_string(row.exit_code) + "), see " + dir + "/train.log");
    }
    rows.push_back(std::move(row));
  }

  double best_val = 0;
  for (const auto& r : rows)
    if (r.report) best_val = std::max(best_val, r.report->final.val_accuracy);
  const double target = base.bench.target_accuracy > 0 ? base.bench.target_accuracy : 0.98 * best_val;
  json backprop_ttt = nullptr;
  for (const auto& r : rows)
    if (r.report && r.report->method == "backprop" && r.name == "backprop")
      backprop_ttt = time_to_target(*r.report, target);

  json table = json::array();
  std::vector<BenchTableRow> summary_rows;
  std::string md = "| method | test acc | val acc | peak | within budget | train s | time to target s | "
                   "speed-up vs backprop | params | batch sizes | inference img/s |\n"
                   "|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : rows) {
    json row = {{"method", r.name}, {"exit_code", r.exit_code}};
    BenchTableRow summary;
    summary.method = r.name;
    if (!r.report) {
      const bool over = r.exit_code == static_cast<int>(ExitCode::kOverBudget);
      row["fits_budget"] = !over;
      row["error"] = r.error.empty() ? "run failed" : r.error;
      table.push_back(row);
      summary.failure = (over ? "does not fit" : "failed (exit " + std::to_string(r.exit_code) + ")") +
                        (r.error.empty() ? "" : ": " + r.error);
      summary_rows.push_back(summary);
      md += "| " + r.name + " | " + (over ? "does not fit" : "failed (exit " +
                                     std::to_string(r.exit_code) + ")") + " |||||||||\n";
      continue;
    }
    const Report& rep = *r.report;
    const std::string dir = method_dir(out, r.name);
    json batches = json::array();
    for (const auto& b : rep.blocks) batches.push_back(b.batch_size);
    const json ttt = time_to_target(rep, target);
    json speedup = nullptr;
    if (!ttt.is_null() && !backprop_ttt.is_null() && ttt.get<double>() > 0)
      speedup = backprop_ttt.get<double>() / ttt.get<double>();
    const bool within = !base.memory.budget || rep.peak_memory_bytes <= *base.memory.budget;
    const double rate = inference_rate(dir + "/model.pt", base);
    row.update({{"test_accuracy", rep.final.test_accuracy},
                {"val_accuracy", rep.final.val_accuracy},
                {"peak_memory_bytes", rep.peak_memory_bytes},
                {"within_budget", within},
                {"train_seconds", rep.train_seconds},
                {"eval_seconds", rep.eval_seconds},
                {"time_to_target_seconds", ttt},
                {"params", rep.final.params},
                {"full_model_params", rep.full_model_params},
                {"batch_sizes", batches},
                {"inference_images_per_second", rate},
                {"speedup_vs_backprop", speedup}});
    table.push_back(row);
    summary.measured = true;
    summary.test_accuracy = rep.final.test_accuracy;
    if (!ttt.is_null()) summary.time_to_target_seconds = ttt.get<double>();
    if (!speedup.is_null()) summary.speedup_vs_backprop = speedup.get<double>();
    summary.peak_memory_bytes = rep.peak_memory_bytes;
    summary.exported_params = rep.final.params;
    summary.full_model_params = rep.full_model_params;
    for (const auto& b : rep.blocks) summary.batch_sizes.push_back(b.batch_size);
    summary_rows.push_back(summary);
    char line[512];
    std::snprintf(line, sizeof line,
                  "| %s | %.4f | %.4f | %s | %s | %.1f | %s | %s | %lld | %s | %.0f |\n",
                  r.name.c_str(), rep.final.test_accuracy, rep.final.val_accuracy,
                  format_size(rep.peak_memory_bytes).c_str(), within ? "yes" : "NO",
                  rep.train_seconds, ttt.is_null() ? "never" : std::to_string(ttt.get<double>()).c_str(),
                  speedup.is_null() ? "-" : std::to_string(speedup.get<double>()).substr(0, 5).c_str(),
                  static_cast<long long>(rep.final.params), batches.dump().c_str(), rate);
    md += line;
  }
  const json bench = {{"target_accuracy", target},
                      {"budget_bytes", base.memory.budget ? json(*base.memory.budget) : json(nullptr)},
                      {"config", base.to_json()},
                      {"rows", table}};
  write_file_atomic(out + "/bench.json", bench.dump(2) + "\n");
  char header[256];
  std::snprintf(header, sizeof header, "budget %s, target validation accuracy %.4f\n\n",
                base.memory.budget ? format_size(*base.memory.budget, true).c_str() : "none", target);
  write_file_atomic(out + "/bench.md", header + md);
  std::cout << "\n" << format_bench_table(summary_rows, base.memory.budget, target)
            << "full table: " << out << "/bench.md, per method: " << out << "/<method>/\n";
  // Not fitting the budget is a result; anything else means a method went unmeasured.
  for (const auto& r : rows)
    if (!r.report && r.exit_code != static_cast<int>(ExitCode::kOverBudget))
      return static_cast<int>(ExitCode::kFailure);
  return 0;
}

}  // namespace neuroflux::cli
