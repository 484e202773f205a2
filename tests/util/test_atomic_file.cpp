#include <catch2/catch.hpp>

#include <sys/resource.h>

#include <csignal>
#include <filesystem>

#include "neuroflux/util/errors.h"
#include "neuroflux/util/atomic_file.h"

TEST_CASE("an atomic write that fails leaves the old file", "[util][unit]") {
  const std::string path = "/tmp/neuroflux-atomic-test.txt";
  neuroflux::write_file_atomic(path, "old");
  CHECK_THROWS(neuroflux::write_atomic_with(path, [](const std::string& temp) {
    neuroflux::write_file_atomic(temp, "half");
    throw std::runtime_error("killed");
  }));
  CHECK(neuroflux::read_file(path) == "old");
  std::filesystem::remove(path);
}

TEST_CASE("a write that runs out of space names the file and keeps the old one",
          "[util][unit]") {
  const std::string path = "/tmp/neuroflux-full-disk-test.txt";
  neuroflux::write_file_atomic(path, "old");
  // A file size limit stands in for a full disk: write() fails with EFBIG once past it (the
  // signal that would otherwise end the process is ignored for the test).
  rlimit before{};
  REQUIRE(getrlimit(RLIMIT_FSIZE, &before) == 0);
  auto* previous_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = before;
  small.rlim_cur = 4096;
  REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
  std::string message;
  neuroflux::ExitCode code = neuroflux::ExitCode::kOk;
  try {
    neuroflux::write_file_atomic(path, std::string(1 << 20, 'x'));
  } catch (const neuroflux::Error& e) {
    message = e.what();
    code = e.code();
  }
  setrlimit(RLIMIT_FSIZE, &before);
  std::signal(SIGXFSZ, previous_handler);
  CHECK(code == neuroflux::ExitCode::kBadData);
  CHECK(message.find(path) != std::string::npos);
  CHECK(message.find("too large") != std::string::npos);  // strerror(EFBIG): "File too large"
  CHECK(neuroflux::read_file(path) == "old");
  for (const auto& entry : std::filesystem::directory_iterator("/tmp"))
    CHECK(entry.path().string().rfind(path + ".tmp", 0) == std::string::npos);
  std::filesystem::remove(path);
}

TEST_CASE("a file that cannot be created is a data error naming it", "[util][unit]") {
  try {
    neuroflux::write_file_atomic("/proc/neuroflux-no-such-file.json", "{}");
    FAIL("writing under /proc must fail");
  } catch (const neuroflux::Error& e) {
    CHECK(e.code() == neuroflux::ExitCode::kBadData);
    CHECK(std::string(e.what()).find("/proc/neuroflux-no-such-file.json") != std::string::npos);
  }
}
