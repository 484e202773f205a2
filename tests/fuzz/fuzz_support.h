// What every harness promises, in one place. Bad input must end in one of NeuroFlux's clear errors
// (neuroflux::Error and its kinds, which the CLI turns into a message and an exit code). Anything
// else is a finding and must reach libFuzzer as a crash: a sanitizer report or a signal does so by
// itself; an exception of another type (std::bad_alloc from a size read from a header, a raw
// c10::Error or nlohmann::json exception escaping a reader that should have validated) is printed
// with its type and aborts here. A broken promise of the harness's own (a round trip that does not
// hold) aborts through NF_FUZZ_REQUIRE.
#pragma once

#include <cxxabi.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <typeinfo>

#include <c10/util/Logging.h>

#include "neuroflux/util/errors.h"

namespace neuroflux::fuzz {

// Every c10::Error collects a symbolised backtrace as it is built (dladdr per frame): on corrupt
// archives, where LibTorch throws for most inputs, that was a quarter of the checkpoint harness's
// time. The harnesses report an escaped exception by type and message, and abort with a stack.
inline const bool kNoTorchBacktraces = [] {
  c10::SetStackTraceFetcher([] { return std::string("(no backtrace: fuzzing)"); });
  return true;
}();

inline std::string type_name(const std::type_info& type) {
  int status = 0;
  char* name = abi::__cxa_demangle(type.name(), nullptr, nullptr, &status);
  std::string out = status == 0 && name != nullptr ? name : type.name();
  std::free(name);
  return out;
}

/// Reports an exception that must not have been thrown here, and aborts.
[[noreturn]] inline void escaped(const std::exception& e) {
  std::fprintf(stderr, "\nneuroflux fuzz: an exception escaped: %s: %s\n",
               type_name(typeid(e)).c_str(), e.what());
  std::abort();
}

/// Calls `f`; returns normally when it succeeds or throws a neuroflux::Error, aborts otherwise.
template <typename F>
void expect_clear_errors(F&& f) {
  try {
    f();
  } catch (const neuroflux::Error&) {
    // The intended answer to bad input.
  } catch (const std::exception& e) {
    escaped(e);
  }
}

#define NF_FUZZ_REQUIRE(cond, what)                                                        \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      std::fprintf(stderr, "\nneuroflux fuzz: %s:%d: %s does not hold: %s\n", __FILE__,    \
                   __LINE__, #cond, std::string(what).c_str());                            \
      std::abort();                                                                        \
    }                                                                                      \
  } while (0)

/// A directory of this process's own for the files a harness writes, under $NEUROFLUX_FUZZ_SCRATCH
/// (scripts/fuzz.sh points it at tmpfs and removes it afterwards: a crash exits without cleanup),
/// else /dev/shm, else the temp directory.
inline const std::filesystem::path& scratch_dir() {
  // Never destroyed: the atexit handler below still reads it after static destructors ran.
  static const std::filesystem::path* dir = [] {
    const char* from_env = std::getenv("NEUROFLUX_FUZZ_SCRATCH");
    std::filesystem::path base = from_env != nullptr && *from_env != 0 ? from_env : "/dev/shm";
    std::error_code ec;
    if (!std::filesystem::is_directory(base, ec) || ::access(base.c_str(), W_OK) != 0) {
      base = std::filesystem::temp_directory_path();
    }
    auto* d = new std::filesystem::path(base / ("neuroflux-fuzz-" + std::to_string(::getpid())));
    std::filesystem::create_directories(*d);
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(scratch_dir(), ignored);
    });
    return d;
  }();
  return *dir;
}

/// Writes `size` bytes to `path` (truncating it) and returns the path.
inline std::string write_bytes(const std::filesystem::path& path, const void* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) {
    std::fprintf(stderr, "neuroflux fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
  return path.string();
}

}  // namespace neuroflux::fuzz
