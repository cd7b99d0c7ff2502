// LoLDU end to end (docs/METHODS.md §7): the flags and their errors, the report's parameter and
// memory counts, info on the adapter, resume, and merges that evaluate as the training forward
// (the merge exactness of every method, LoLDU's included, is final_validation_test.cpp).
#include <gtest/gtest.h>

#include <algorithm>

#include "cli_util.h"

using namespace qtune::test;

namespace {

std::vector<std::string> finetune_args(const std::string& data, const std::string& method, const std::string& out) {
  return {"finetune", "-m", stories_bin(), "-t", tok512(), "--data", data, "--method", method, "--seq", "32",
          "--batch", "2", "--steps", "4", "--threads", "1", "--quiet", "--out", out, "--report", out + ".json"};
}

template <class... S>
std::vector<std::string> with(std::vector<std::string> a, S... extra) {
  (a.push_back(extra), ...);
  return a;
}

}  // namespace

TEST(CliLoldu, BadRankAndInitAreOneLineErrors) {
  QT_REQUIRE_STORIES();
  const std::string dir = scratch_dir(), data = small_corpus(dir, "d.txt", 20), out = dir + "/o.gguf";
  // stories260K: min(out, in) is 64, or 32 for attn_k and attn_v (4 kv heads)
  EXPECT_TRUE(IsBadInput(run_qtune(with(finetune_args(data, "loldu", out), "--rank", "40", "--target", "k")),
                         "--rank 40 is above min(out, in) = 32 of blk.0.attn_k [32, 64]"));
  EXPECT_TRUE(IsBadInput(run_qtune(with(finetune_args(data, "qaloldu", out), "--rank", "0")), "--rank"));
  EXPECT_TRUE(IsBadInput(run_qtune(with(finetune_args(data, "loldu", out), "--rank", "-1")), "--rank"));
  EXPECT_TRUE(IsBadInput(run_qtune(with(finetune_args(data, "qloldu", out), "--loldu-init", "zeros")), "zeros"));
  EXPECT_TRUE(IsBadInput(run_qtune(with(finetune_args(data, "lora", out), "--loldu-init", "lu")),
                         "--loldu-init is an option of loldu, qloldu and qaloldu"));
  EXPECT_TRUE(IsBadInput(run_qtune(with(finetune_args(data, "loldu", out), "--bits", "8")), "--bits"));
  EXPECT_FALSE(exists(out));
}

// trainable_params counts z (and σ): r per targeted weight; adapter_state_bytes adds the frozen
// L_r, Ū_r and P, O(r·(in + out)) per weight.
TEST(CliLoldu, ReportCountsTrainableParamsAndAdapterState) {
  QT_REQUIRE_STORIES();
  const std::string dir = scratch_dir(), data = small_corpus(dir, "d.txt", 40);
  // stories260K, 5 layers: [out, in] of q, k, v, o, gate, up, down
  const int64_t layers = 5, r = 4;
  const int64_t shapes[7][2] = {{64, 64}, {32, 64}, {32, 64}, {64, 64}, {172, 64}, {172, 64}, {64, 172}};
  int64_t lu_floats = 0, perm_ints = 0;
  for (const auto& s : shapes) lu_floats += layers * (s[0] + s[1]) * r, perm_ints += layers * s[0];
  for (bool train_scale : {false, true}) {
    const std::string out = dir + "/s" + std::to_string(train_scale) + ".gguf";
    auto args = with(finetune_args(data, "loldu", out), "--rank", "4");
    if (train_scale) args.push_back("--loldu-train-scale");
    auto res = run_qtune(args);
    ASSERT_EQ(res.code, 0) << res.err;
    auto j = read_json(out + ".json");
    const int64_t slots = layers * 7;
    EXPECT_EQ(j["trainable_params"].get<int64_t>(), slots * (r + (train_scale ? 1 : 0)));
    // z, z0, σ per slot + L_r, Ū_r (float) + P (int32)
    EXPECT_EQ(j["adapter_state_bytes"].get<int64_t>(), (lu_floats + slots * (2 * r + 1)) * 4 + perm_ints * 4);
    EXPECT_EQ(j["method"]["loldu_init"], "uniform");
    EXPECT_EQ(j["method"]["loldu_train_scale"], train_scale);
    auto info = run_qtune({"info", out});
    ASSERT_EQ(info.code, 0) << info.err;
    EXPECT_NE(info.out.find("method:        loldu"), std::string::npos) << info.out;
    EXPECT_NE(info.out.find("--loldu-init uniform"), std::string::npos) << info.out;
  }
  auto lora = run_qtune(with(finetune_args(data, "lora", dir + "/l.gguf"), "--rank", "4"));
  ASSERT_EQ(lora.code, 0) << lora.err;
  auto j = read_json(dir + "/l.gguf.json");
  EXPECT_EQ(j["adapter_state_bytes"].get<int64_t>(), j["trainable_params"].get<int64_t>() * 4);
}

TEST(CliLoldu, FullRankRoundTripsThroughTheAdapterAndTheMerge) {
  QT_REQUIRE_STORIES();
  const std::string dir = scratch_dir(), data = small_corpus(dir, "d.txt", 40), out = dir + "/f.gguf";
  auto res = run_qtune(with(finetune_args(data, "qaloldu", out), "--rank", "full", "--val-every", "4"));
  ASSERT_EQ(res.code, 0) << res.err;
  auto j = read_json(out + ".json");
  EXPECT_EQ(j["method"]["rank"], "full");
  EXPECT_EQ(j["trainable_params"].get<int64_t>(), 5 * (5 * 64 + 2 * 32));  // k, v: 32 pivots
  auto m = run_qtune({"merge", "-m", stories_bin(), "-t", tok512(), "--adapter", out, "--out", dir + "/m.gguf"});
  ASSERT_EQ(m.code, 0) << m.err;
  EXPECT_NE(m.out.find("rank full"), std::string::npos) << m.out;
  EXPECT_NE(m.out.find("exact 4-bit integer merge"), std::string::npos) << m.out;
  auto e = run_qtune({"export-lora", "--adapter", out, "--out", dir + "/e.gguf"});
  EXPECT_TRUE(IsBadInput(e, "not an additive LoRA"));
}

TEST(CliLoldu, ResumeWithTrainedScaleGivesTheSameAdapter) {
  QT_REQUIRE_STORIES();
  const std::string dir = scratch_dir(), data = small_corpus(dir, "d.txt", 40);
  auto args = [&](const std::string& out) {
    return with(finetune_args(data, "qloldu", out), "--loldu-train-scale", "--loldu-init", "normal", "--save-every",
                "2", "--schedule", "constant");  // constant: the run may stop at step 2 and go on to 4
  };
  auto ref = run_qtune(args(dir + "/ref.gguf"));
  ASSERT_EQ(ref.code, 0) << ref.err;
  auto half = args(dir + "/half.gguf");
  half[std::find(half.begin(), half.end(), "--steps") - half.begin() + 1] = "2";
  ASSERT_EQ(run_qtune(half).code, 0);
  auto resumed = with(args(dir + "/res.gguf"), "--resume", dir + "/half.gguf.ckpt.gguf");
  auto r = run_qtune(resumed);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_json(dir + "/res.gguf.json")["resumed_from_step"], 2);
  EXPECT_EQ(read_file(dir + "/res.gguf"), read_file(dir + "/ref.gguf"));
}
