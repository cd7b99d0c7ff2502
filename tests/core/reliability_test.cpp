// tests/core/reliability_test.cpp — issue 9 (reliability), the core part: only regular files are
// read (a FIFO without a writer must not block), outputs must not replace a directory or a
// device, messages quoting file content stay one short printable line, and the finite check.
#include <gtest/gtest.h>

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>
#include <cmath>
#include <limits>
#include <string>

#include "core/error.h"
#include "core/file.h"
#include "core/tensor.h"
#include "test_util.h"

using namespace qtune;

namespace {

using test::error_of;

using test::error_within_10s;

std::string make_fifo(const std::string& dir) {
  std::string p = dir + "/fifo";
  EXPECT_EQ(::mkfifo(p.c_str(), 0600), 0);
  return p;
}

}  // namespace

TEST(RegularFiles, FifoIsRefusedWithoutBlocking) {
  const std::string f = make_fifo(test::scratch_dir());
  const std::string want = f + ": not a regular file (a FIFO)";
  EXPECT_EQ(error_within_10s([&] { MappedFile m(f); }), want);
  EXPECT_EQ(error_within_10s([&] { read_text_file(f); }), want);
  EXPECT_EQ(error_within_10s([&] { read_file_head(f, 4); }), want);
  EXPECT_EQ(error_within_10s([&] { ::close(open_for_reading(f)); }), want);
}

TEST(RegularFiles, DirectoryDeviceAndSocketAreNamed) {
  const std::string dir = test::scratch_dir();
  EXPECT_EQ(error_of([&] { MappedFile m(dir); }), dir + ": not a regular file (a directory)");
  EXPECT_EQ(error_of([&] { read_file_head("/dev/null", 4); }), "/dev/null: not a regular file (a character device)");
  // A socket file: bind() creates one.
  const std::string sock = dir + "/s";
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(sock.size(), sizeof addr.sun_path);
  std::copy(sock.begin(), sock.end(), addr.sun_path);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(error_of([&] { read_text_file(sock); }), sock + ": not a regular file (a socket)");
  ::close(fd);
  EXPECT_EQ(error_of([&] { read_text_file(dir + "/missing"); }), dir + "/missing: no such file");
}

TEST(RegularFiles, HeadOfAShortAndAnEmptyFile) {
  const std::string dir = test::scratch_dir();
  write_text_file_atomic(dir + "/a", "GG");
  EXPECT_EQ(read_file_head(dir + "/a", 4), "GG");
  write_text_file_atomic(dir + "/e", "");
  EXPECT_EQ(read_file_head(dir + "/e", 4), "");
  MappedFile m(dir + "/e");
  EXPECT_EQ(m.size(), 0u);
}

TEST(AtomicFileTarget, DirectoryOrDeviceIsRefusedNamingTheOutput) {
  const std::string dir = test::scratch_dir();
  ::mkdir((dir + "/out").c_str(), 0700);
  const std::string msg = error_of([&] { write_text_file_atomic(dir + "/out", "x"); });
  EXPECT_EQ(msg, dir + "/out: cannot write: it is a directory, not a regular file");
  // Renaming a temp file over /dev/null (as root) would replace the device with a file.
  EXPECT_EQ(error_of([&] { AtomicFile f("/dev/null"); }),
            "/dev/null: cannot write: it is a character device, not a regular file");
  struct stat st {};
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  // A write error names the output, never the temp file.
  const std::string nodir = dir + "/no/such/dir/x.gguf";
  EXPECT_EQ(error_of([&] { write_text_file_atomic(nodir, "x"); }), nodir + ": cannot write: No such file or directory");
}

TEST(AtomicFileTarget, WriteFailureNamesTheOutputNotTheTempFile) {
  const std::string dir = test::scratch_dir(), p = dir + "/big.gguf";
  // A 4 KB file size limit makes the write fail with EFBIG, as a full disk fails it with ENOSPC.
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = old;
  small.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string msg = error_of([&] {
    AtomicFile f(p);
    f.write_str(std::string(1 << 16, 'x'));
    f.commit();
  });
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_EQ(msg, p + ": write failed: File too large");
  EXPECT_EQ(msg.find(".tmp."), std::string::npos) << msg;
  EXPECT_EQ(std::system(("test -z \"$(ls -A '" + dir + "')\"").c_str()), 0) << "temp file left behind";
}

TEST(Messages, NonPrintableBytesAreEscaped) {
  EXPECT_EQ(printable(std::string("a\0b\nc\x1b[31m\x7f", 11)), "a\\x00b\\x0ac\\x1b[31m\\x7f");
  EXPECT_EQ(printable("caf\xc3\xa9 \xe2\x96\x81 ok"), "caf\xc3\xa9 \xe2\x96\x81 ok");  // UTF-8 stays
  EXPECT_EQ(printable("\xff\xc3"), "\\xff\\xc3");                                      // invalid / cut
  EXPECT_EQ(printable("\xc2\x9b"), "\\xc2\\x9b");                                      // C1 control CSI
  EXPECT_EQ(printable(printable(std::string("x\0y", 3))), printable(std::string("x\0y", 3)));  // idempotent
  // fail() applies it: a NUL no longer cuts the message short.
  const std::string key("gen\0eral", 8);
  EXPECT_EQ(error_of([&] { fail("f.gguf: key '{}': bad", key); }), "f.gguf: key 'gen\\x00eral': bad");
}

TEST(Messages, LongContentIsCut) {
  const std::string big(1 << 20, 'a');
  const std::string e = excerpt(big);
  EXPECT_EQ(e, std::string(80, 'a') + "\xe2\x80\xa6");
  EXPECT_EQ(excerpt("short"), "short");
  EXPECT_EQ(excerpt(std::string(80, 'b')), std::string(80, 'b'));  // exactly the limit: no "…"
  // Characters, not bytes: a multi-byte character is never split.
  std::string u;
  for (int i = 0; i < 100; ++i) u += "\xe2\x96\x81";
  std::string ue;
  for (int i = 0; i < 80; ++i) ue += "\xe2\x96\x81";
  EXPECT_EQ(excerpt(u), ue + "\xe2\x80\xa6");
  // The safety net in fail(): a message quoting 1 MB without excerpt() keeps its two ends.
  const std::string msg = error_of([&] { fail("f.gguf: value '{}' is bad", big); });
  EXPECT_LT(msg.size(), 1300u);
  EXPECT_EQ(msg.rfind("f.gguf: value 'aaa", 0), 0u);
  EXPECT_NE(msg.find("' is bad"), std::string::npos);
}

TEST(Finite, FirstNonFiniteAndIndex) {
  std::vector<float> v(10000, 1.0f);
  EXPECT_EQ(first_non_finite(v.data(), int64_t(v.size())), -1);
  v[7777] = std::numeric_limits<float>::infinity();
  v[9000] = std::nanf("");
  EXPECT_EQ(first_non_finite(v.data(), int64_t(v.size())), 7777);
  v[7777] = -std::numeric_limits<float>::infinity();
  EXPECT_EQ(first_non_finite(v.data(), int64_t(v.size())), 7777);
  v[7777] = std::numeric_limits<float>::max();  // large but finite
  EXPECT_EQ(first_non_finite(v.data(), int64_t(v.size())), 9000);
  EXPECT_EQ(first_non_finite(v.data(), 0), -1);
  EXPECT_EQ(index_str({3, 7}, 10), "[1, 3]");
  EXPECT_EQ(index_str({5}, 4), "[4]");
  EXPECT_EQ(index_str({2, 3, 4}, 23), "[1, 2, 3]");
}
