// tests/io/png_test.cpp — io/png.h: what write_png writes decodes (with libpng's reader,
// tests/png_read.h) to the same pixels, is byte-identical for equal pixels, and bad shapes or
// unwritable paths are an Error naming the file that leaves nothing behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include "core/file.h"
#include "io/png.h"
#include "png_read.h"
#include "test_util.h"

namespace qtune {
namespace {

using test::error_of;

std::vector<uint8_t> pattern(int w, int h, int c) {
  std::vector<uint8_t> p(size_t(w) * h * c);
  for (size_t i = 0; i < p.size(); ++i) p[i] = uint8_t((i * 37 + 11) % 256);
  return p;
}

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Png, GrayRoundTrip) {
  const std::string dir = test::scratch_dir(), path = dir + "/g.png";
  const std::vector<uint8_t> px = pattern(7, 5, 1);
  const uint64_t bytes = write_png(path, px.data(), 7, 5, 1);
  EXPECT_EQ(bytes, std::filesystem::file_size(path));
  const test::DecodedPng d = test::read_png(path);
  ASSERT_TRUE(d.ok) << d.error;
  EXPECT_EQ(d.width, 7);
  EXPECT_EQ(d.height, 5);
  EXPECT_EQ(d.bit_depth, 8);
  EXPECT_EQ(d.color_type, PNG_COLOR_TYPE_GRAY);
  EXPECT_EQ(d.pixels, px);
  EXPECT_EQ(files_in(dir), std::vector<std::string>{"g.png"});  // no temp file left
}

TEST(Png, ChannelCountsRoundTrip) {
  const std::string dir = test::scratch_dir();
  const int types[] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
  for (int c = 1; c <= 4; ++c) {
    const std::string path = dir + "/c" + std::to_string(c) + ".png";
    const std::vector<uint8_t> px = pattern(3, 4, c);
    write_png(path, px.data(), 3, 4, c);
    const test::DecodedPng d = test::read_png(path);
    ASSERT_TRUE(d.ok) << d.error;
    EXPECT_EQ(d.channels, c);
    EXPECT_EQ(d.color_type, types[c]);
    EXPECT_EQ(d.pixels, px) << c << " channels";
  }
}

TEST(Png, SamePixelsSameBytes) {
  const std::string dir = test::scratch_dir();
  const std::vector<uint8_t> px = pattern(30, 20, 1);
  write_png(dir + "/a.png", px.data(), 30, 20, 1);
  write_png(dir + "/b.png", px.data(), 30, 20, 1);
  EXPECT_EQ(read_text_file(dir + "/a.png"), read_text_file(dir + "/b.png"));
}

TEST(Png, BadShapeOrPathIsAnErrorNamingTheFile) {
  const std::string dir = test::scratch_dir(), path = dir + "/x.png";
  const std::vector<uint8_t> px = pattern(4, 4, 4);
  const std::string five = error_of([&] { write_png(path, px.data(), 2, 2, 5); });
  EXPECT_NE(five.find(path), std::string::npos) << five;
  EXPECT_NE(five.find("1 to 4 channels"), std::string::npos) << five;
  const std::string empty = error_of([&] { write_png(path, px.data(), 0, 4, 1); });
  EXPECT_NE(empty.find(path), std::string::npos) << empty;
  const std::string missing = dir + "/no/such/dir/x.png";
  const std::string nodir = error_of([&] { write_png(missing, px.data(), 4, 4, 1); });
  EXPECT_NE(nodir.find(missing), std::string::npos) << nodir;
  EXPECT_TRUE(files_in(dir).empty());
}

}  // namespace
}  // namespace qtune
