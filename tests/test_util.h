// tests/test_util.h — helpers shared by the test binaries.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/rng.h"

namespace qtune::test {

// The shared/ folder with models and data: $QTUNE_SHARED_DIR when set (so one build can be
// pointed elsewhere, e.g. at an empty folder to prove that a missing one fails), else the
// folder CMake's QTUNE_SHARED_DIR named.
inline std::string shared_dir() {
  const char* env = std::getenv("QTUNE_SHARED_DIR");
  return env && *env ? std::string(env) : std::string(QTUNE_SHARED_DIR);
}
// Fashion-MNIST's folder: $QTUNE_FASHION_MNIST_DIR when set, else CMake's (Debian's package).
inline std::string fashion_mnist_dir() {
  const char* env = std::getenv("QTUNE_FASHION_MNIST_DIR");
  return env && *env ? std::string(env) : std::string(QTUNE_FASHION_MNIST_DIR);
}
inline std::string test_data(const std::string& f) { return std::string(QTUNE_TEST_DATA) + "/" + f; }
inline bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}
// A fresh writable scratch directory for one test (under $TMPDIR or /tmp).
inline std::string scratch_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string base = std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp";
  std::string dir = base + "/qtune_test_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" + info->name();
  std::string cmd = "rm -rf '" + dir + "' && mkdir -p '" + dir + "'";
  if (std::system(cmd.c_str()) != 0) ADD_FAILURE() << "cannot create " << dir;
  return dir;
}

// ‖a − b‖ / ‖b‖ (b is the reference)
template <class A, class B>
double rel_err(const A* a, const B* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    double d = double(a[i]) - double(b[i]);
    num += d * d;
    den += double(b[i]) * double(b[i]);
  }
  return std::sqrt(num) / (std::sqrt(den) + 1e-30);
}

// Whether the build requires shared/ (CMake -DQTUNE_REQUIRE_SHARED=ON, what scripts/test.sh
// and CI use): then a test that needs an absent shared file FAILS, so the golden checks cannot
// pass by being skipped; a hand build without it skips them, visibly.
#ifdef QTUNE_REQUIRE_SHARED
constexpr bool kRequireShared = true;
#else
constexpr bool kRequireShared = false;
#endif

inline std::string shared_absent(const std::string& path) {
  return "shared file absent: " + path +
         (kRequireShared ? " (this build requires the shared folder: QTUNE_REQUIRE_SHARED=ON; set QTUNE_SHARED_DIR "
                           "or put it at " QTUNE_SHARED_DIR ")"
                         : "");
}

inline std::string dataset_absent(const std::string& path) {
  return "dataset absent: " + path +
         (kRequireShared ? " (this build requires it: QTUNE_REQUIRE_SHARED=ON; bash scripts/install-deps.sh dit "
                           "installs Debian's dataset-fashion-mnist, or set QTUNE_FASHION_MNIST_DIR)"
                         : " (bash scripts/install-deps.sh dit)");
}

// For an optional check inside a test: whether `path` is there; when it is not and shared/ is
// required, also records a failure.
inline bool have_shared(const std::string& path) {
  if (exists(path)) return true;
  if (kRequireShared) ADD_FAILURE() << shared_absent(path);
  return false;
}

// The names of the files in dir, sorted; empty when dir cannot be read.
inline std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// A language model's batch [B, T] of random tokens and targets below V, from seed; target i is
// < 0 (not counted) where i % every == at.
struct TokenBatch {
  std::vector<int> tokens, targets;
};
inline TokenBatch random_token_batch(int B, int T, int V, uint64_t seed, int every, int at) {
  Rng rng(seed);
  TokenBatch b;
  for (int i = 0; i < B * T; ++i) {
    b.tokens.push_back(static_cast<int>(rng.below(static_cast<uint64_t>(V))));
    b.targets.push_back(i % every == at ? -1 : static_cast<int>(rng.below(static_cast<uint64_t>(V))));
  }
  return b;
}

// The message of the qtune::Error that f() throws, or "(no error)".
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const ::qtune::Error& e) {
    return e.what();
  }
  return "(no error)";
}

// As error_of, but SIGALRM ends the binary (a failure, not a hang) if f blocks, e.g. in open()
// of a FIFO that has no writer.
template <class F>
std::string error_within_10s(F&& f) {
  ::alarm(10);
  std::string msg = error_of(f);
  ::alarm(0);
  return msg;
}

}  // namespace qtune::test

// Ends the test when a file from shared/ is absent: a failure when shared/ is required (see
// kRequireShared), else a visible skip.
#define QT_REQUIRE_SHARED(path)                                                                       \
  do {                                                                                                \
    const std::string qt_shared_path_ = (path);                                                       \
    if (::qtune::test::exists(qt_shared_path_)) break;                                                \
    if (::qtune::test::kRequireShared) GTEST_FAIL() << ::qtune::test::shared_absent(qt_shared_path_); \
    GTEST_SKIP() << ::qtune::test::shared_absent(qt_shared_path_);                                    \
  } while (0)

// As QT_REQUIRE_SHARED, for a file of a dataset package (Fashion-MNIST).
#define QT_REQUIRE_DATASET(path)                                                                       \
  do {                                                                                                 \
    const std::string qt_dataset_path_ = (path);                                                       \
    if (::qtune::test::exists(qt_dataset_path_)) break;                                                \
    if (::qtune::test::kRequireShared) GTEST_FAIL() << ::qtune::test::dataset_absent(qt_dataset_path_); \
    GTEST_SKIP() << ::qtune::test::dataset_absent(qt_dataset_path_);                                   \
  } while (0)
