// qtune distill (EfficientDM): data-free — it never opens the dataset (watched with inotify,
// with the real-image ablation as the control that does) — writes a deployed model that
// `info`, `sample` and `fid`-style loaders run, and refuses bad input in one line.
#include <gtest/gtest.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "cli_util.h"
#include "io/dit_file.h"
#include "models/tiny_dit.h"

using namespace qtune;
using namespace qtune::test;

namespace {

// A random float DiT of Fashion-MNIST's shape (28×28×1, 10 classes), small and quick.
std::string teacher(const std::string& dir) {
  DitConfig c;
  c.image = 28, c.channels = 1, c.patch = 7, c.dim = 16, c.depth = 1, c.heads = 2, c.mlp_ratio = 2;
  c.num_classes = 10, c.freq_dim = 16;
  const std::string p = dir + "/teacher.gguf";
  save_dit(p, random_dit(c, 3, 0.2));
  return p;
}

std::vector<std::string> distill_args(const std::string& t, const std::string& out,
                                      const std::string& data = fashion_mnist_dir()) {
  return {"distill", "--teacher", t, "--out", out, "--iters", "2", "--batch", "2", "--steps", "4", "--calib", "2",
          "--rank", "2", "--classes", "0-2", "--threads", "1", "--data", data};
}

// Opens (or reads) of files in `dir` while f runs.
template <class F>
int opens_in(const std::string& dir, F&& f) {
  const int fd = inotify_init1(IN_NONBLOCK);
  EXPECT_GE(fd, 0);
  EXPECT_GE(inotify_add_watch(fd, dir.c_str(), IN_OPEN | IN_ACCESS), 0) << dir;
  f();
  int events = 0;
  alignas(inotify_event) char buf[4096];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    for (char* p = buf; p < buf + n; p += sizeof(inotify_event) + reinterpret_cast<inotify_event*>(p)->len) ++events;
  }
  close(fd);
  return events;
}

}  // namespace

TEST(DistillCli, NeverOpensTheDataset) {
  QT_REQUIRE_DATASET(fashion_mnist_dir() + "/train-images-idx3-ubyte.gz");
  const std::string dir = scratch_dir(), t = teacher(dir);
  // a private copy to watch: tests running beside this one (dit-train, fid) read the shared folder
  const std::string data = dir + "/fashion-mnist";
  std::filesystem::create_directory(data);
  for (const auto& e : std::filesystem::directory_iterator(fashion_mnist_dir()))
    if (e.is_regular_file()) std::filesystem::copy_file(e.path(), data + "/" + e.path().filename().string());
  const int distill_opens = opens_in(data, [&] {
    RunResult r = run_qtune(distill_args(t, dir + "/s.gguf", data));
    EXPECT_EQ(r.code, 0) << r.err;
  });
  EXPECT_EQ(distill_opens, 0);
  // the control: the real-image ablation reads the training images, and the watch sees it
  std::vector<std::string> real = distill_args(t, dir + "/real.gguf", data);
  real.insert(real.end(), {"--objective", "real"});
  const int real_opens = opens_in(data, [&] {
    RunResult r = run_qtune(real);
    EXPECT_EQ(r.code, 0) << r.err;
  });
  EXPECT_GT(real_opens, 0);
}

TEST(DistillCli, WritesADeployedModelWithPerStepTables) {
  const std::string dir = scratch_dir(), t = teacher(dir), out = dir + "/s.gguf";
  std::vector<std::string> args = distill_args(t, out);
  args.insert(args.end(), {"--report", dir + "/r.json"});
  RunResult r = run_qtune(args);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = read_json(dir + "/r.json");
  EXPECT_EQ(j["optimizer_steps"].get<int>(), 8);
  EXPECT_EQ(j["quantized_slots"].get<int>(), 5 + 7);
  EXPECT_EQ(j["iter_loss"].size(), 2u);
  const DitFile f = load_dit(out);
  EXPECT_EQ(f.quantized.size(), 12u);
  EXPECT_EQ(f.act.tables.size(), 12u);
  EXPECT_EQ(f.act.tables.at("blk.0.attn_q").bits, 4);
  EXPECT_EQ(f.act.tables.at("blk.0.attn_q").steps(), 4);
  EXPECT_EQ(f.act.tables.at("patch_embd").bits, 8);
  RunResult info = run_qtune({"info", out});
  EXPECT_EQ(info.code, 0) << info.err;
  RunResult s = run_qtune({"sample", "-m", out, "--class", "0-2", "--n", "1", "--steps", "2", "--cfg", "2", "--eta",
                           "1", "--out", dir + "/g.png", "--threads", "1"});
  EXPECT_EQ(s.code, 0) << s.err;
  EXPECT_TRUE(exists(dir + "/g.png"));
  // --one-act-scale: one entry per table (the ablation without TALSQ)
  args = distill_args(t, dir + "/one.gguf");
  args.push_back("--one-act-scale");
  ASSERT_EQ(run_qtune(args).code, 0);
  EXPECT_EQ(load_dit(dir + "/one.gguf").act.tables.at("blk.0.ffn_up").steps(), 1);
}

TEST(DistillCli, BadInputIsOneLine) {
  const std::string dir = scratch_dir(), t = teacher(dir), out = dir + "/s.gguf";
  ASSERT_EQ(run_qtune(distill_args(t, out)).code, 0);
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases = {
      {distill_args(out, dir + "/x.gguf"), "must be a float DiT"},
      {distill_args(dir + "/missing.gguf", dir + "/x.gguf"), "missing.gguf"},
      {[&] {
         auto a = distill_args(t, dir + "/x.gguf");
         *(std::find(a.begin(), a.end(), "--classes") + 1) = "0-12";
         return a;
       }(),
       "12"},
  };
  for (const auto& c : cases) {
    RunResult r = run_qtune(c.args);
    EXPECT_EQ(r.code, 2) << r.err;
    ASSERT_EQ(r.err_lines().size(), 1u) << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
    EXPECT_FALSE(exists(dir + "/x.gguf"));
  }
}
