// Checkpoint files: round trip, refusal of a checkpoint that does not fit the run, and that a
// save killed by SIGKILL never leaves a corrupt file at the checkpoint path.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/file.h"
#include "test_util.h"
#include "train/checkpoint.h"

namespace qtune {
namespace {

// Two params with recognisable values, and an optimizer over them with one step done.
struct Fixture {
  std::vector<float> a, ga, b, gb;
  std::vector<Param<float>> params;
  AdamW opt;
  Fixture(int64_t rows, int64_t cols, float base)
      : a(rows * cols), ga(a.size()), b(cols), gb(b.size()), params(make(rows, cols)), opt(params, AdamWOptions{}) {
    for (size_t i = 0; i < a.size(); ++i) a[i] = base + 0.001f * i, ga[i] = 0.5f - 0.01f * (i % 97);
    for (size_t i = 0; i < b.size(); ++i) b[i] = -base - i, gb[i] = 0.25f;
    opt.step(0.01f);
  }
  std::vector<Param<float>> make(int64_t rows, int64_t cols) {
    return {{"blk.0.attn_q.lora_a", a.data(), ga.data(), rows * cols, {rows, cols}},
            {"blk.0.attn_q.lora_b", b.data(), gb.data(), cols, {cols}}};
  }
};

TrainState some_state() {
  TrainState st;
  st.step = 3;
  st.rng = {1, 2, 3, 0xffffffffffffffffULL};
  st.data_state = {7, 8};
  st.loss_curve = {{1, 2.5f, 0.1f}, {2, 2.25f, 0.2f}, {3, 2.125f, 0.3f}};
  st.val_curve = {{2, 2.75f}};
  return st;
}

const RunKeys kKeys = {{"method", "lora"}, {"rank", "8"}};

TEST(Checkpoint, RoundTrip) {
  const std::string path = test::scratch_dir() + "/ckpt.gguf";
  Fixture s(4, 6, 1.0f), r(4, 6, 9.0f);
  save_checkpoint(path, s.params, s.opt, some_state(), kKeys);
  TrainState st;
  load_checkpoint(path, r.params, r.opt, st, kKeys);
  EXPECT_EQ(r.a, s.a);
  EXPECT_EQ(r.b, s.b);
  EXPECT_EQ(std::memcmp(r.opt.m(), s.opt.m(), s.opt.size() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(r.opt.v(), s.opt.v(), s.opt.size() * sizeof(float)), 0);
  EXPECT_EQ(r.opt.t(), 1);
  const TrainState want = some_state();
  EXPECT_EQ(st.step, 3);
  EXPECT_EQ(st.rng, want.rng);
  EXPECT_EQ(st.data_state, want.data_state);
  ASSERT_EQ(st.loss_curve.size(), 3u);
  EXPECT_EQ(st.loss_curve[2].step, 3);
  EXPECT_EQ(st.loss_curve[2].loss, 2.125f);
  EXPECT_EQ(st.loss_curve[1].lr, 0.2f);
  ASSERT_EQ(st.val_curve.size(), 1u);
  EXPECT_EQ(st.val_curve[0].step, 2);
  EXPECT_EQ(st.val_curve[0].loss, 2.75f);
}

std::string load_error(const std::string& path, Fixture& s, const RunKeys& keys) {
  TrainState st;
  try {
    load_checkpoint(path, s.params, s.opt, st, keys);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Checkpoint, RefusesWhatDoesNotFit) {
  const std::string dir = test::scratch_dir(), path = dir + "/ckpt.gguf";
  Fixture s(4, 6, 1.0f);
  save_checkpoint(path, s.params, s.opt, some_state(), kKeys);
  Fixture r(4, 6, 0.0f);
  EXPECT_EQ(load_error(path, r, {{"method", "lora"}, {"rank", "4"}}), path + ": rank 8 does not match --rank 4");
  EXPECT_EQ(load_error(path, r, {{"method", "lora"}, {"seed", "1"}}),
            path + ": has no setting for --seed (made by a different kind of run)");
  Fixture wide(4, 5, 0.0f);
  EXPECT_EQ(load_error(path, wide, kKeys),
            path + ": tensor blk.0.attn_q.lora_a has shape [4, 6] but the model's is [4, 5]");
  wide.params[0].name = "blk.1.attn_q.lora_a";
  EXPECT_NE(load_error(path, wide, kKeys).find("tensor blk.1.attn_q.lora_a is missing"), std::string::npos);
  write_text_file_atomic(dir + "/junk.gguf", "not a gguf file at all");
  EXPECT_NE(load_error(dir + "/junk.gguf", r, kKeys).find(dir + "/junk.gguf"), std::string::npos);
}

// A child process overwrites a checkpoint in a loop and is SIGKILLed at varying moments:
// whatever is at the path afterwards must be a complete checkpoint, the previous one or a new
// one (the temp file + rename rule).
TEST(Checkpoint, SigkillDuringSaveLeavesNoCorruptFile) {
  const std::string path = test::scratch_dir() + "/ckpt.gguf";
  const int64_t rows = 512, cols = 512;  // ~3 MiB per save, so kills land mid-write
  // Built before fork: the child must not start OpenMP threads (libgomp and fork do not mix).
  const Fixture want(rows, cols, 1.0f);
  save_checkpoint(path, want.params, want.opt, some_state(), kKeys);  // the previous checkpoint
  int mid_write = 0;
  for (int round = 0; round < 6; ++round) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      for (uint64_t i = 0;; ++i) {
        TrainState st = some_state();
        st.data_state = {i + 100, 0};
        save_checkpoint(path, want.params, want.opt, st, kKeys);
      }
    }
    ::usleep(5000 + 7000 * round);
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status));
    // A temp file left behind means the kill landed mid-write.
    const std::string tmp = path + ".tmp." + std::to_string(pid);
    if (test::exists(tmp)) ++mid_write, ::unlink(tmp.c_str());
    Fixture r(rows, cols, 0.0f);
    TrainState st;
    ASSERT_NO_THROW(load_checkpoint(path, r.params, r.opt, st, kKeys)) << "round " << round;
    EXPECT_EQ(r.a, want.a);
    EXPECT_EQ(std::memcmp(r.opt.v(), want.opt.v(), want.opt.size() * sizeof(float)), 0);
  }
  std::printf("%d of 6 kills landed mid-write\n", mid_write);
}

}  // namespace
}  // namespace qtune
