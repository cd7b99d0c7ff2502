#include <gtest/gtest.h>

#include <fstream>

#include "core/file.h"
#include "core/rng.h"
#include "core/system.h"
#include "test_util.h"

using namespace qtune;

TEST(Rng, DeterministicAndRestorable) {
  Rng a(7), b(7);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.next_u64(), b.next_u64());
  auto st = a.state();
  double x = a.normal();
  a.set_state(st);
  EXPECT_EQ(a.normal(), x);
  double mean = 0;
  for (int i = 0; i < 20000; ++i) mean += a.uniform();
  EXPECT_NEAR(mean / 20000, 0.5, 0.01);
}

TEST(File, AtomicWriteAndTruncatedRead) {
  std::string dir = test::scratch_dir();
  std::string p = dir + "/x.bin";
  {
    AtomicFile f(p);
    f.put<int32_t>(42);
    f.commit();
  }
  MappedFile m(p);
  Reader r(m);
  EXPECT_EQ(r.get<int32_t>("value"), 42);
  try {
    r.get<int32_t>("next value");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos);
  }
}

TEST(File, UncommittedWriteLeavesNothing) {
  std::string dir = test::scratch_dir();
  std::string p = dir + "/y.bin";
  {
    AtomicFile f(p);
    f.put<int32_t>(1);
  }
  EXPECT_FALSE(file_exists(p));
  EXPECT_EQ(std::system(("test -z \"$(ls -A '" + dir + "')\"").c_str()), 0) << "temp file left behind";
}

TEST(File, MissingPathIsAnError) { EXPECT_THROW(MappedFile("/nonexistent/qtune/file"), Error); }

TEST(System, PeakRssIsPositive) { EXPECT_GT(peak_rss_bytes(), 0); }

TEST(File, StaleTempOfADeadWriterIsRemoved) {
  std::string dir = test::scratch_dir();
  std::string p = dir + "/z.bin";
  // pid 2^22+1 is above Linux's pid_max default ceiling, so no such process exists
  std::string stale = p + ".tmp.4194305";
  std::string alive = p + ".tmp.1";  // init is always alive: not ours to remove
  write_text_file_atomic(stale, "x");
  write_text_file_atomic(alive, "x");
  write_text_file_atomic(p, "data");
  EXPECT_FALSE(file_exists(stale));
  EXPECT_TRUE(file_exists(alive));
  EXPECT_EQ(read_text_file(p), "data");
}
