#include "neuroflux/profile/profile.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "neuroflux/util/size_format.h"

namespace neuroflux {

using nlohmann::json;

namespace {

json steps_json(const std::vector<std::pair<int64_t, double>>& steps) {
  json j = json::array();
  for (const auto& [b, t] : steps) j.push_back({{"batch", b}, {"seconds_per_sample", t}});
  return j;
}

json peaks_json(const std::vector<std::pair<int64_t, int64_t>>& peaks) {
  json j = json::array();
  for (const auto& [b, p] : peaks) j.push_back({{"batch", b}, {"bytes", p}});
  return j;
}

std::vector<std::pair<int64_t, double>> steps_from(const json& j) {
  std::vector<std::pair<int64_t, double>> steps;
  for (const auto& s : j)
    steps.emplace_back(s.at("batch").get<int64_t>(), s.at("seconds_per_sample").get<double>());
  return steps;
}

std::vector<std::pair<int64_t, int64_t>> peaks_from(const json& j) {
  std::vector<std::pair<int64_t, int64_t>> peaks;
  for (const auto& s : j) peaks.emplace_back(s.at("batch").get<int64_t>(), s.at("bytes").get<int64_t>());
  return peaks;
}

json allocations_json(const std::vector<AllocationsAtPeak>& traces) {
  json j = json::array();
  for (const auto& t : traces) {
    json operators = json::array();
    for (const auto& o : t.by_operator)
      operators.push_back({{"op", o.op}, {"bytes", o.bytes}, {"allocations", o.allocations}});
    j.push_back({{"batch", t.batch},
                 {"before_bytes", t.before_bytes},
                 {"traced_bytes", t.traced_bytes},
                 {"operators", operators}});
  }
  return j;
}

std::vector<AllocationsAtPeak> allocations_from(const json& j) {
  std::vector<AllocationsAtPeak> traces;
  for (const auto& t : j) {
    AllocationsAtPeak a;
    a.batch = t.at("batch");
    a.before_bytes = t.at("before_bytes");
    a.traced_bytes = t.at("traced_bytes");
    for (const auto& o : t.at("operators"))
      a.by_operator.push_back({o.at("op"), o.at("bytes"), o.at("allocations")});
    traces.push_back(std::move(a));
  }
  return traces;
}

json mode_json(const UnitModeProfile& m) {
  json j = {{"mode", m.mode},
            {"transient_static_bytes", m.transient_static},
            {"transient_bytes_per_sample", m.transient_per_sample},
            {"transient_peaks", peaks_json(m.transient_peaks)},
            {"step_seconds", steps_json(m.step_seconds)}};
  if (m.threads > 0) j["threads"] = m.threads;
  return j;
}

UnitModeProfile mode_from(const json& m) {
  return {m.at("mode"),
          m.at("transient_static_bytes"),
          m.at("transient_bytes_per_sample"),
          steps_from(m.at("step_seconds")),
          peaks_from(m.value("transient_peaks", json::array())),
          m.value("threads", int64_t{0})};
}

/// "batch:microseconds per sample" pairs, as the profile table prints them.
std::string steps_text(const std::vector<std::pair<int64_t, double>>& steps) {
  std::string text;
  for (const auto& [b, t] : steps)
    text += (text.empty() ? "" : " ") + std::to_string(b) + ":" +
            std::to_string(static_cast<int64_t>(std::round(t * 1e6)));
  return text;
}

int64_t product(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

}  // namespace

int64_t UnitProfile::input_bytes_per_sample() const { return 4 * product(input_shape); }
int64_t UnitProfile::output_bytes_per_sample() const { return 4 * product(output_shape); }

double UnitProfile::step_seconds_per_sample(int64_t batch) const {
  return interpolated_seconds(step_seconds, batch);
}

std::vector<UnitModeProfile> UnitProfile::modes() const {
  std::vector<UnitModeProfile> all{
      {"plain", transient_static, transient_per_sample, step_seconds, transient_peaks}};
  all.insert(all.end(), alternatives.begin(), alternatives.end());
  return all;
}

const UnitModeProfile* UnitProfile::plain_at(int64_t threads) const {
  for (const auto& m : at_fewer_threads)
    if (m.threads == threads) return &m;
  return nullptr;
}

std::vector<int64_t> Profile::fewer_thread_counts() const {
  std::vector<int64_t> counts;
  if (units.empty()) return counts;
  for (const auto& m : units.front().at_fewer_threads) {
    const bool everywhere = std::all_of(units.begin(), units.end(), [&](const UnitProfile& u) {
      return u.plain_at(m.threads) != nullptr;
    });
    if (everywhere) counts.push_back(m.threads);
  }
  std::sort(counts.rbegin(), counts.rend());
  return counts;
}

double bounded_transient(double transient_static, double transient_per_sample,
                         const std::vector<std::pair<int64_t, int64_t>>& measured, int64_t batch) {
  double bytes = transient_static + transient_per_sample * static_cast<double>(batch);
  for (const auto& [b, peak] : measured)
    if (b <= batch) bytes = std::max(bytes, static_cast<double>(peak));
  return bytes;
}

double interpolated_seconds(const std::vector<std::pair<int64_t, double>>& step_seconds,
                            int64_t batch) {
  if (step_seconds.empty()) return 0;
  if (batch <= step_seconds.front().first) return step_seconds.front().second;
  if (batch >= step_seconds.back().first) return step_seconds.back().second;
  for (size_t i = 1; i < step_seconds.size(); ++i) {
    const auto& [b1, t1] = step_seconds[i - 1];
    const auto& [b2, t2] = step_seconds[i];
    if (batch <= b2) {
      const double f = std::log2(static_cast<double>(batch) / b1) /
                       std::log2(static_cast<double>(b2) / b1);
      return t1 + f * (t2 - t1);
    }
  }
  return step_seconds.back().second;
}

json Profile::to_json() const {
  json units_json = json::array();
  for (const auto& u : units) {
    json alternatives = json::array(), fewer_threads = json::array();
    for (const auto& m : u.alternatives) alternatives.push_back(mode_json(m));
    for (const auto& m : u.at_fewer_threads) fewer_threads.push_back(mode_json(m));
    json unit_json = {{"unit", u.unit},
                      {"input_shape", u.input_shape},
                      {"output_shape", u.output_shape},
                      {"head", u.head.to_json()},
                      {"param_bytes", u.param_bytes},
                      {"grad_bytes", u.grad_bytes},
                      {"optimizer_bytes", u.optimizer_bytes},
                      {"transient_static_bytes", u.transient_static},
                      {"transient_bytes_per_sample", u.transient_per_sample},
                      {"transient_peaks", peaks_json(u.transient_peaks)},
                      {"step_seconds", steps_json(u.step_seconds)},
                      {"forward_seconds_per_sample", u.forward_seconds_per_sample},
                      {"alternatives", alternatives}};
    if (!u.at_fewer_threads.empty()) unit_json["at_fewer_threads"] = fewer_threads;
    if (!u.allocations.empty()) unit_json["allocations"] = allocations_json(u.allocations);
    units_json.push_back(std::move(unit_json));
  }
  return {{"model", model},     {"device", device},   {"num_classes", num_classes},
          {"threads", threads}, {"seconds", seconds}, {"units", units_json}};
}

Profile Profile::from_json(const json& j) {
  Profile p;
  p.model = j.at("model");
  p.device = j.at("device");
  p.num_classes = j.at("num_classes");
  p.seconds = j.value("seconds", 0.0);
  p.threads = j.value("threads", int64_t{0});
  for (const auto& u : j.at("units")) {
    UnitProfile up;
    up.unit = u.at("unit");
    up.input_shape = u.at("input_shape").get<std::vector<int64_t>>();
    up.output_shape = u.at("output_shape").get<std::vector<int64_t>>();
    up.head = AuxHeadSpec::from_json(u.at("head"));
    up.param_bytes = u.at("param_bytes");
    up.grad_bytes = u.at("grad_bytes");
    up.optimizer_bytes = u.at("optimizer_bytes");
    up.transient_static = u.at("transient_static_bytes");
    up.transient_per_sample = u.at("transient_bytes_per_sample");
    up.step_seconds = steps_from(u.at("step_seconds"));
    up.transient_peaks = peaks_from(u.value("transient_peaks", json::array()));
    up.forward_seconds_per_sample = u.at("forward_seconds_per_sample");
    for (const auto& m : u.value("alternatives", json::array()))
      up.alternatives.push_back(mode_from(m));
    for (const auto& m : u.value("at_fewer_threads", json::array()))
      up.at_fewer_threads.push_back(mode_from(m));
    up.allocations = allocations_from(u.value("allocations", json::array()));
    p.units.push_back(up);
  }
  return p;
}

std::string Profile::table() const {
  std::string out = "| unit | output (CxHxW) | head (pool, F) | static | transient/sample | "
                    "transient fixed | step us/sample |\n|---|---|---|---|---|---|---|\n";
  char line[512];
  for (const auto& u : units) {
    const std::string head = u.head.classifier ? "classifier"
                                               : std::to_string(u.head.pool) + ", " +
                                                     std::to_string(u.head.width);
    const std::string steps = steps_text(u.step_seconds);
    std::snprintf(line, sizeof line, "| %lld | %lldx%lldx%lld | %s | %s | %s | %s | %s |\n",
                  static_cast<long long>(u.unit), static_cast<long long>(u.output_shape[0]),
                  static_cast<long long>(u.output_shape[1]),
                  static_cast<long long>(u.output_shape[2]), head.c_str(),
                  format_size(u.static_bytes()).c_str(),
                  format_size(static_cast<int64_t>(u.transient_per_sample)).c_str(),
                  format_size(static_cast<int64_t>(u.transient_static)).c_str(), steps.c_str());
    out += line;
  }
  for (const int64_t t : fewer_thread_counts()) {
    out += "\nAt " + std::to_string(t) + " thread(s) instead of " + std::to_string(threads) +
           ":\n| unit | transient/sample | transient fixed | step us/sample |\n|---|---|---|---|\n";
    for (const auto& u : units) {
      const UnitModeProfile& m = *u.plain_at(t);
      out += "| " + std::to_string(u.unit) + " | " +
             format_size(static_cast<int64_t>(m.transient_per_sample)) + " | " +
             format_size(static_cast<int64_t>(m.transient_static)) + " | " +
             steps_text(m.step_seconds) + " |\n";
    }
  }
  return out;
}

std::string Profile::allocations_table(size_t entries) const {
  std::string out;
  for (const auto& u : units) {
    for (const auto& t : u.allocations) {
      out += "unit " + std::to_string(u.unit) + ", batch " + std::to_string(t.batch) +
             ": the step's peak holds " + format_size(t.traced_bytes) + " it allocated, above " +
             format_size(t.before_bytes) + " live before it\n";
      out += "| operator | bytes | allocations |\n|---|---|---|\n";
      int64_t rest_bytes = 0, rest_allocations = 0;
      size_t rest = 0;
      for (size_t i = 0; i < t.by_operator.size(); ++i) {
        const OperatorBytes& o = t.by_operator[i];
        if (i < entries) {
          out += "| " + o.op + " | " + std::to_string(o.bytes) + " | " +
                 std::to_string(o.allocations) + " |\n";
        } else {
          ++rest;
          rest_bytes += o.bytes;
          rest_allocations += o.allocations;
        }
      }
      if (rest > 0)
        out += "| (" + std::to_string(rest) + " more operators) | " + std::to_string(rest_bytes) +
               " | " + std::to_string(rest_allocations) + " |\n";
      out += "\n";
    }
  }
  return out;
}

}  // namespace neuroflux
