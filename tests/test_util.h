// tests/test_util.h — helpers shared by the test binaries.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

namespace qtune::test {

inline std::string shared_dir() { return QTUNE_SHARED_DIR; }
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

}  // namespace qtune::test

// Skips (visibly) when a file from ../shared is absent.
#define QT_REQUIRE_SHARED(path)                                                       \
  do {                                                                                \
    if (!::qtune::test::exists(path)) GTEST_SKIP() << "shared file absent: " << (path); \
  } while (0)
