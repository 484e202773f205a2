// Reads one JSON object of a config, field by field, with messages that name the JSON pointer of
// the bad value. finish() rejects keys nobody asked for, so a typo never passes silently.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace neuroflux::config_detail {

class JsonReader {
 public:
  /// `value` must outlive the reader. A null or missing section reads as an empty object.
  JsonReader(const nlohmann::json& value, std::string pointer);

  JsonReader section(const std::string& key);
  /// True when `key` is present and not null (reading nothing: a later read still counts).
  bool has(const std::string& key) const;

  void string(const std::string& key, std::string& out);
  void choice(const std::string& key, std::string& out, const std::vector<std::string>& allowed);
  void boolean(const std::string& key, bool& out);
  /// An integer >= `min`.
  void integer(const std::string& key, int64_t& out, int64_t min);
  /// A number in [min, max] (`min_open`: strictly above min).
  void number(const std::string& key, double& out, double min, double max, bool min_open);
  /// A positive integer, or the string `word` (e.g. "auto"), which reads as `word_value`.
  void integer_or_word(const std::string& key, int64_t& out, const std::string& word,
                       int64_t word_value);
  /// A positive integer, or one of `words`, each read as its value.
  void integer_or_words(const std::string& key, int64_t& out,
                        const std::vector<std::pair<std::string, int64_t>>& words);
  /// A size: "64MiB", "1.5GiB", a byte count, or "none" / null.
  void size(const std::string& key, std::optional<int64_t>& out);

  /// Throws for any key not read.
  void finish() const;

  [[noreturn]] void fail(const std::string& key, const std::string& what) const;

 private:
  const nlohmann::json* find(const std::string& key);

  const nlohmann::json& value_;
  std::string pointer_;
  std::set<std::string> known_;
};

/// Short rendering of a JSON value for messages.
std::string describe(const nlohmann::json& value);

}  // namespace neuroflux::config_detail
