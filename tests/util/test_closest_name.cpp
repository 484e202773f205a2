#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "neuroflux/util/closest_name.h"

using neuroflux::closest_name;
using neuroflux::did_you_mean;
using neuroflux::edit_distance;

TEST_CASE("edit distance counts inserts, deletes, substitutions and adjacent swaps",
          "[util][unit]") {
  CHECK(edit_distance("", "") == 0);
  CHECK(edit_distance("", "abc") == 3);
  CHECK(edit_distance("abc", "") == 3);
  CHECK(edit_distance("train", "train") == 0);
  CHECK(edit_distance("trian", "train") == 1);       // swap
  CHECK(edit_distance("confg", "config") == 1);      // insert
  CHECK(edit_distance("epochz", "epochs") == 1);     // substitute
  CHECK(edit_distance("threadss", "threads") == 1);  // delete
  CHECK(edit_distance("Train", "train") == 0);       // case is ignored
  CHECK(edit_distance("kitten", "sitting") == 3);
  CHECK(edit_distance("ca", "abc") == 3);  // optimal string alignment, not full Damerau
  CHECK(edit_distance("abc", "ca") == edit_distance("ca", "abc"));
}

TEST_CASE("the closest name is offered only for a likely typo", "[util][unit]") {
  const std::vector<std::string> commands = {"bench", "bench-ops", "bench-rowconv", "eval",
                                             "plan",  "profile",   "train"};
  CHECK(closest_name("trian", commands) == std::optional<std::string>("train"));
  CHECK(closest_name("tarin", commands) == std::optional<std::string>("train"));
  CHECK(closest_name("prfile", commands) == std::optional<std::string>("profile"));
  CHECK(closest_name("bench-op", commands) == std::optional<std::string>("bench-ops"));
  CHECK(closest_name("evaluate", commands) == std::optional<std::string>("eval"));  // prefix
  CHECK(closest_name("benchmark", commands) == std::optional<std::string>("bench"));
  CHECK(closest_name("train", commands) == std::optional<std::string>("train"));
  CHECK_FALSE(closest_name("frobnicate", commands).has_value());
  CHECK_FALSE(closest_name("xyz", commands).has_value());
  CHECK_FALSE(closest_name("", commands).has_value());
  CHECK_FALSE(closest_name("train", {}).has_value());
  // Ties go to the earlier candidate.
  CHECK(closest_name("bat", {"cat", "bar"}) == std::optional<std::string>("cat"));
}

TEST_CASE("did_you_mean renders the suggestion or nothing", "[util][unit]") {
  const std::vector<std::string> options = {"config", "set", "out", "threads", "help", "resume"};
  CHECK(did_you_mean("confg", options, "--") == "; did you mean '--config'?");
  CHECK(did_you_mean("thread", options, "--") == "; did you mean '--threads'?");
  CHECK(did_you_mean("epochs", {"epochz"}) == "; did you mean 'epochz'?");
  CHECK(did_you_mean("quux", options, "--").empty());
}
