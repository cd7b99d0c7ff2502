// fuzz/fuzz_util.h — what every harness shares: the input as a file, and the one accepted failure.
//
// qtune's loaders take paths, so each input is written to a per-process file (in /dev/shm when it
// is writable: no disk traffic at thousands of executions per second) and loaded from there.
// Bad input must end in qtune::Error (core/error.h); anything else — another exception, a crash,
// a sanitizer report, a hang, a huge allocation — is a bug that libFuzzer reports.
#pragma once
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/error.h"

namespace qtune::fuzz {

// A private directory for this process, removed at exit (with the files in it). The name is
// never freed: the exit handler runs after static destructors.
inline const std::string& scratch_dir() {
  static const std::string* dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : tmp ? tmp : "/tmp";
    auto* d = new std::string(base + "/qtune-fuzz-" + std::to_string(::getpid()));
    ::mkdir(d->c_str(), 0700);
    std::atexit([] {
      const std::string cmd = "rm -rf '" + scratch_dir() + "'";
      if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "cannot remove %s\n", scratch_dir().c_str());
    });
    return d;
  }();
  return *dir;
}

// "<scratch>/<name>"; the name's extension matters to loaders that sniff it (.jsonl, .model).
inline std::string scratch_path(const std::string& name) { return scratch_dir() + "/" + name; }

// Writes bytes to path (truncating); aborts if it cannot, since the harness would test nothing.
inline void write_file(const std::string& path, const uint8_t* data, size_t size) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) std::abort();
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::write(fd, data + done, size - done);
    if (n <= 0) std::abort();
    done += size_t(n);
  }
  ::close(fd);
}

inline std::string write_input(const std::string& name, const uint8_t* data, size_t size) {
  std::string path = scratch_path(name);
  write_file(path, data, size);
  return path;
}

// Runs f and returns true; a qtune::Error is the expected outcome of bad input (returns false), anything else propagates (an
// uncaught exception aborts, which libFuzzer reports as a crash with the input).
template <class F>
bool expect_error(F&& f) {
  try {
    f();
    return true;
  } catch (const Error& e) {
    // QTUNE_FUZZ_VERBOSE=1 <harness> <files>: why each input was refused (to check seeds).
    static const bool verbose = std::getenv("QTUNE_FUZZ_VERBOSE") != nullptr;
    if (verbose) std::fprintf(stderr, "qtune::Error: %s\n", e.what());
    return false;
  }
}

// A property of a successful load that must hold; prints what and aborts (a crash to libFuzzer).
#define QT_FUZZ_CHECK(cond)                                                          \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      std::fprintf(stderr, "fuzz check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)

}  // namespace qtune::fuzz
