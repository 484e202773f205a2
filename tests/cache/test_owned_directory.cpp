#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include "neuroflux/src/cache/owned_directory.h"
#include "neuroflux/util/errors.h"
#include "neuroflux/util/atomic_file.h"

using namespace neuroflux;
namespace fs = std::filesystem;

namespace {

std::string scratch(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("nf-owned-" + name);
  fs::remove_all(dir);
  return dir.string();
}

}  // namespace

TEST_CASE("a run owns only the directories it made or found empty", "[cache][unit]") {
  const std::string made = scratch("made") + "/nested";
  create_owned_directory(made);
  write_file_atomic(made + "/block0-train.nfcache", "x");
  create_owned_directory(made);  // a resumed run finds its own directory as it left it
  CHECK(fs::exists(made + "/block0-train.nfcache"));
  CHECK(remove_owned_directory(made));
  CHECK_FALSE(fs::exists(made));

  const std::string empty = scratch("empty");
  fs::create_directories(empty);
  create_owned_directory(empty);
  CHECK(remove_owned_directory(empty));

  // A user's directory with files in it is neither marked nor removed.
  const std::string users = scratch("users");
  fs::create_directories(users);
  write_file_atomic(users + "/notes.txt", "mine\n");
  CHECK_THROWS_AS(create_owned_directory(users), DataError);
  CHECK_FALSE(remove_owned_directory(users));
  CHECK(read_file(users + "/notes.txt") == "mine\n");
  fs::remove_all(users);

  const std::string file = scratch("file");
  write_file_atomic(file, "not a directory\n");
  CHECK_THROWS_AS(create_owned_directory(file), DataError);
  fs::remove(file);
}
