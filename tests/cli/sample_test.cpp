// qtune sample with the tiny DiT of the golden test (tests/data/dit_tiny.gguf, 28×28, 10
// classes): the PNG decodes (libpng's reader) to the grid the flags ask for, with white 2-pixel
// gaps; the same seed gives the same bytes and another seed other bytes; bad input is one error
// line with exit 2 and writes nothing; no temp file is left behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "cli_util.h"
#include "png_read.h"

using namespace qtune::test;

namespace {

const std::string& tiny_dit() {
  static const std::string p = test_data("dit_tiny.gguf");
  return p;
}

// a few DDIM steps on one thread: well under a second for the tiny DiT
std::vector<std::string> sample_args(const std::string& cls, int n, const std::string& out,
                                     std::vector<std::string> extra = {}) {
  std::vector<std::string> a = {"sample", "--model", tiny_dit(), "--class", cls, "--n", std::to_string(n),
                                "--threads", "1", "--out", out, "-q"};
  if (std::find(extra.begin(), extra.end(), "--steps") == extra.end()) extra.insert(extra.end(), {"--steps", "3"});
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// Whether every pixel of the rectangle is `v`.
bool all_equal(const DecodedPng& d, int y0, int x0, int h, int w, int v) {
  for (int y = y0; y < y0 + h; ++y)
    for (int x = x0; x < x0 + w; ++x)
      if (d.at(y, x) != v) return false;
  return true;
}

}  // namespace

TEST(SampleCli, OneClassMakesASquareishGrid) {
  const std::string dir = scratch_dir(), out = dir + "/grid.png";
  RunResult r = run_qtune(sample_args("3", 5, out, {"--report", dir + "/r.json"}));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;  // -q
  // n = 5 → ⌈√5⌉ = 3 columns, 2 rows of 28-pixel tiles with 2-pixel gaps
  const DecodedPng d = read_png(out);
  ASSERT_TRUE(d.ok) << d.error;
  EXPECT_EQ(d.width, 3 * 28 + 2 * 2);
  EXPECT_EQ(d.height, 2 * 28 + 2);
  EXPECT_EQ(d.bit_depth, 8);
  EXPECT_EQ(d.color_type, PNG_COLOR_TYPE_GRAY);
  EXPECT_TRUE(all_equal(d, 28, 0, 2, d.width, 255));  // the gap between the rows
  EXPECT_TRUE(all_equal(d, 0, 28, d.height, 2, 255));  // between columns 0 and 1
  EXPECT_TRUE(all_equal(d, 30, 60, 28, 28, 255));      // the 6th cell: no image
  EXPECT_FALSE(all_equal(d, 0, 0, 28, 28, 255));       // an image
  const nlohmann::json rep = read_json(dir + "/r.json");
  EXPECT_EQ(rep["command"], "sample");
  EXPECT_EQ(rep["model"], tiny_dit());
  EXPECT_EQ(rep["classes"], nlohmann::json({3}));
  EXPECT_EQ(rep["class_names"], nlohmann::json({"Dress"}));
  EXPECT_EQ(rep["n"], 5);
  EXPECT_EQ(rep["images"], 5);
  EXPECT_EQ(rep["steps"], 3);
  EXPECT_EQ(rep["cfg"], 1.0);
  EXPECT_EQ(rep["eta"], 0.0);
  EXPECT_EQ(rep["seed"], 0);
  EXPECT_GE(rep["seconds"].get<double>(), 0.0);
  EXPECT_EQ(rep["png"]["width"], d.width);
  EXPECT_EQ(rep["png"]["height"], d.height);
  EXPECT_EQ(rep["png"]["bytes"].get<uint64_t>(), std::filesystem::file_size(out));
  EXPECT_EQ(files_in(dir), (std::vector<std::string>{"grid.png", "r.json"}));  // no temp files

  // --cols overrides: one row of 5
  ASSERT_EQ(run_qtune(sample_args("3", 5, out, {"--cols", "5"})).code, 0);
  const DecodedPng row = read_png(out);
  EXPECT_EQ(row.width, 5 * 28 + 4 * 2);
  EXPECT_EQ(row.height, 28);
}

TEST(SampleCli, SeveralClassesOneRowEach) {
  const std::string dir = scratch_dir(), out = dir + "/grid.png";
  // --class 0-9 --n 8: a 10×8 grid (80 images in 5 chunks)
  RunResult r = run_qtune(sample_args("0-9", 8, out, {"--steps", "2", "--cfg", "3", "--report", dir + "/r.json"}));
  ASSERT_EQ(r.code, 0) << r.err;
  DecodedPng d = read_png(out);
  ASSERT_TRUE(d.ok) << d.error;
  EXPECT_EQ(d.width, 8 * 28 + 7 * 2);
  EXPECT_EQ(d.height, 10 * 28 + 9 * 2);
  const nlohmann::json rep = read_json(dir + "/r.json");
  EXPECT_EQ(rep["images"], 80);
  EXPECT_EQ(rep["cfg"], 3.0);
  EXPECT_EQ(rep["grid"]["rows"], 10);
  EXPECT_EQ(rep["grid"]["cols"], 8);
  ASSERT_EQ(rep["class_names"].size(), 10u);
  EXPECT_EQ(rep["class_names"][9], "Ankle boot");

  ASSERT_EQ(run_qtune(sample_args("8,9", 3, out)).code, 0);
  d = read_png(out);
  EXPECT_EQ(d.width, 3 * 28 + 2 * 2);
  EXPECT_EQ(d.height, 2 * 28 + 2);

  // unconditional
  ASSERT_EQ(run_qtune(sample_args("null", 4, out, {"--report", dir + "/n.json"})).code, 0);
  d = read_png(out);
  EXPECT_EQ(d.width, 2 * 28 + 2);
  EXPECT_EQ(d.height, 2 * 28 + 2);
  const nlohmann::json n = read_json(dir + "/n.json");
  EXPECT_EQ(n["classes"], nlohmann::json::parse("[null]"));
  EXPECT_EQ(n["class_names"], nlohmann::json({"unconditional"}));
}

TEST(SampleCli, SameSeedSameBytesOtherSeedOtherBytes) {
  const std::string dir = scratch_dir();
  auto png = [&](const std::string& name, const std::string& seed, const std::string& eta) {
    const std::string out = dir + "/" + name;
    RunResult r = run_qtune(sample_args("0,7", 3, out, {"--seed", seed, "--eta", eta, "--cfg", "2"}));
    EXPECT_EQ(r.code, 0) << r.err;
    return read_file(out);
  };
  const std::string a = png("a.png", "1", "0"), b = png("b.png", "1", "0"), c = png("c.png", "2", "0");
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // η > 0 draws fresh noise every step, from the same seed
  EXPECT_EQ(png("d.png", "1", "1"), png("e.png", "1", "1"));
  EXPECT_NE(png("f.png", "1", "1"), a);
}

TEST(SampleCli, BadInputIsOneLine) {
  const std::string dir = scratch_dir(), out = dir + "/grid.png";
  EXPECT_TRUE(IsBadInput(run_qtune(sample_args("3", 0, out)), "--n must be 1 to"));
  EXPECT_TRUE(IsBadInput(run_qtune(sample_args("10", 2, out)), "--class: class 10 is outside 0..9"));
  EXPECT_TRUE(IsBadInput(run_qtune(sample_args("0-12", 2, out)), "class 12 is outside 0..9"));
  EXPECT_TRUE(IsBadInput(run_qtune(sample_args("shoe", 2, out)), "--class"));
  EXPECT_TRUE(IsBadInput(run_qtune(sample_args("3", 2, out, {"--steps", "0"})), "--steps must be 1 to 1000"));
  EXPECT_TRUE(IsBadInput(run_qtune(sample_args("3", 2, out, {"--steps", "1001"})), "--steps must be 1 to 1000"));
  EXPECT_TRUE(IsBadInput(run_qtune(sample_args("3", 2, out, {"--eta", "-1"})), "--eta must be in 0..1"));
  EXPECT_TRUE(IsBadInput(run_qtune(sample_args("3", 2, out, {"--cfg", "nan"})), "--cfg"));
  EXPECT_TRUE(IsBadInput(run_qtune(sample_args("3", 2, dir + "/no/such/dir/grid.png")), "--out"));
  EXPECT_TRUE(IsBadInput(run_qtune({"sample", "--model", dir + "/absent.gguf", "--class", "1", "--out", out}),
                         "absent.gguf"));
  // a model cut short, and one that is not a GGUF at all
  const std::string model = read_file(tiny_dit());
  write_file(dir + "/cut.gguf", model.substr(0, model.size() / 2));
  EXPECT_TRUE(IsBadInput(run_qtune({"sample", "--model", dir + "/cut.gguf", "--class", "1", "--out", out}),
                         "cut.gguf"));
  write_file(dir + "/junk.gguf", "this is not a model\n");
  EXPECT_TRUE(IsBadInput(run_qtune({"sample", "--model", dir + "/junk.gguf", "--class", "1", "--out", out}),
                         "junk.gguf"));
  // the output may not replace the model
  write_file(dir + "/m.gguf", model);
  EXPECT_TRUE(IsBadInput(run_qtune({"sample", "--model", dir + "/m.gguf", "--class", "1", "--out", dir + "/m.gguf"}),
                         "--out"));
  EXPECT_TRUE(IsBadInput(run_qtune({"sample", "--model", dir + "/m.gguf", "--class", "1", "--out", out, "--report",
                                    dir + "/m.gguf"}),
                         "--report"));
  EXPECT_EQ(read_file(dir + "/m.gguf"), model);
  EXPECT_EQ(files_in(dir), (std::vector<std::string>{"cut.gguf", "junk.gguf", "m.gguf"}));  // nothing written
}
