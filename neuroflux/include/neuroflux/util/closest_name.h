// "Did you mean ...?" for a mistyped command, option or config key: the closest valid name by
// edit distance, offered only when it is close enough to be a typo.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace neuroflux {

/// Edits (insert, delete, substitute a character, or swap two adjacent ones) that turn `a` into
/// `b`, ignoring ASCII case: "trian" -> "train" is 1.
size_t edit_distance(const std::string& a, const std::string& b);

/// The candidate nearest to `name`, if it is a likely typo of it: at most max(1, size / 3) edits
/// away, or one of the two a prefix of the other (3 characters at least: "evaluate" -> "eval").
/// Ties go to the earlier candidate; an exact match is returned as is.
std::optional<std::string> closest_name(const std::string& name,
                                        const std::vector<std::string>& candidates);

/// "; did you mean 'train'?" (with `prefix` before the name: "--" for options), or "" when no
/// candidate is close.
std::string did_you_mean(const std::string& name, const std::vector<std::string>& candidates,
                         const std::string& prefix = "");

}  // namespace neuroflux
