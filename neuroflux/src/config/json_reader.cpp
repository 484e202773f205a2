#include "config/json_reader.h"

#include <cmath>

#include "neuroflux/util/closest_name.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/util/size_format.h"

namespace neuroflux::config_detail {
namespace {

const nlohmann::json& empty_object() {
  static const nlohmann::json empty = nlohmann::json::object();
  return empty;
}

}  // namespace

std::string describe(const nlohmann::json& value) {
  // A --set value that is no JSON is kept as a raw string, which need not be UTF-8: shown with
  // U+FFFD for bad bytes rather than making dump() throw.
  std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

JsonReader::JsonReader(const nlohmann::json& value, std::string pointer)
    : value_(value.is_null() ? empty_object() : value), pointer_(std::move(pointer)) {
  if (!value_.is_object())
    throw ConfigError((pointer_.empty() ? "/" : pointer_) + ": expected an object, got " +
                      describe(value_));
}

const nlohmann::json* JsonReader::find(const std::string& key) {
  known_.insert(key);
  auto it = value_.find(key);
  return it == value_.end() ? nullptr : &*it;
}

void JsonReader::fail(const std::string& key, const std::string& what) const {
  throw ConfigError(pointer_ + "/" + key + ": " + what);
}

bool JsonReader::has(const std::string& key) const {
  auto it = value_.find(key);
  return it != value_.end() && !it->is_null();
}

JsonReader JsonReader::section(const std::string& key) {
  const nlohmann::json* v = find(key);
  if (v != nullptr && !v->is_object() && !v->is_null())
    fail(key, "expected an object, got " + describe(*v));
  return JsonReader(v ? *v : empty_object(), pointer_ + "/" + key);
}

void JsonReader::string(const std::string& key, std::string& out) {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return;
  if (!v->is_string()) fail(key, "expected a string, got " + describe(*v));
  try {
    (void)v->dump();  // the config is written back as JSON (config.json, reports)
  } catch (const nlohmann::json::type_error&) {
    fail(key, "expected UTF-8 text, got " + describe(*v));
  }
  out = v->get<std::string>();
}

void JsonReader::choice(const std::string& key, std::string& out,
                        const std::vector<std::string>& allowed) {
  std::string value = out;
  string(key, value);
  for (const auto& a : allowed)
    if (a == value) {
      out = value;
      return;
    }
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  fail(key, "expected one of " + list + ", got \"" + value + "\"");
}

void JsonReader::boolean(const std::string& key, bool& out) {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return;
  if (!v->is_boolean()) fail(key, "expected true or false, got " + describe(*v));
  out = v->get<bool>();
}

void JsonReader::integer(const std::string& key, int64_t& out, int64_t min) {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return;
  const std::string expected = min == 1   ? "a positive integer"
                               : min == 0 ? "a non-negative integer"
                                          : "an integer >= " + std::to_string(min);
  bool integral = v->is_number_integer();
  if (v->is_number_float()) {
    // Whole numbers written as floats (3.0, 1e3) count. The range check must come first: casting
    // a double past int64's range (1e126) is undefined behaviour.
    const double d = v->get<double>();
    integral = std::fabs(d) < 9.2e18 && d == std::trunc(d);
  }
  if (!integral) fail(key, "expected " + expected + ", got " + describe(*v));
  const auto value = v->is_number_float() ? static_cast<int64_t>(v->get<double>())
                                          : v->get<int64_t>();
  if (value < min) fail(key, "expected " + expected + ", got " + describe(*v));
  out = value;
}

void JsonReader::number(const std::string& key, double& out, double min, double max,
                        bool min_open) {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return;
  const std::string range = std::string(min_open ? "(" : "[") + describe(min) + ", " +
                            describe(max) + "]";
  if (!v->is_number()) fail(key, "expected a number in " + range + ", got " + describe(*v));
  const double value = v->get<double>();
  if (value < min || value > max || (min_open && value == min))
    fail(key, "expected a number in " + range + ", got " + describe(*v));
  out = value;
}

void JsonReader::integer_or_word(const std::string& key, int64_t& out, const std::string& word,
                                 int64_t word_value) {
  integer_or_words(key, out, {{word, word_value}});
}

void JsonReader::integer_or_words(const std::string& key, int64_t& out,
                                  const std::vector<std::pair<std::string, int64_t>>& words) {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return;
  std::string expected = "expected a positive integer";
  for (size_t i = 0; i < words.size(); ++i)
    expected += (i + 1 == words.size() ? " or \"" : ", \"") + words[i].first + "\"";
  if (v->is_string()) {
    for (const auto& [word, value] : words)
      if (v->get<std::string>() == word) {
        out = value;
        return;
      }
    fail(key, expected + ", got " + describe(*v));
  }
  if (!v->is_number_integer() || v->get<int64_t>() < 1) fail(key, expected + ", got " + describe(*v));
  out = v->get<int64_t>();
}

void JsonReader::size(const std::string& key, std::optional<int64_t>& out) {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return;
  if (v->is_null()) {
    out.reset();
    return;
  }
  if (v->is_number_integer()) {
    if (v->get<int64_t>() <= 0) fail(key, "expected a positive size, got " + describe(*v));
    out = v->get<int64_t>();
    return;
  }
  if (!v->is_string())
    fail(key, "expected a size such as \"64MiB\", a byte count or \"none\", got " + describe(*v));
  try {
    out = parse_size(v->get<std::string>());
  } catch (const std::invalid_argument& e) {
    fail(key, e.what());
  }
}

void JsonReader::finish() const {
  for (auto it = value_.begin(); it != value_.end(); ++it) {
    if (known_.count(it.key()) != 0) continue;
    std::string list;
    for (const auto& k : known_) list += (list.empty() ? "" : ", ") + k;
    const std::vector<std::string> known(known_.begin(), known_.end());
    throw ConfigError(pointer_ + "/" + it.key() + ": unknown key" + did_you_mean(it.key(), known) +
                      " (known here: " + list + ")");
  }
}

}  // namespace neuroflux::config_detail
