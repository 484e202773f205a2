// A directory a run makes for its own files, marked as the run's: cleanup removes a directory only
// when it carries the mark, so a run never deletes a directory a user named, or anything in it
// that the run did not put there.
#pragma once

#include <string>

namespace neuroflux {

/// Creates `dir` (and its parents) and marks it as made by this run; an existing marked
/// directory (a resumed run's) is kept as it is, an existing empty one is marked. Any other
/// existing path, or one that cannot be created, is a DataError naming it.
void create_owned_directory(const std::string& dir);

/// Removes `dir` with everything in it when it carries the mark; returns whether it did.
bool remove_owned_directory(const std::string& dir);

}  // namespace neuroflux
