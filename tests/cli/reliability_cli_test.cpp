// The CLI half of the reliability contract: bounded --threads, every output path checked before
// any work, no input overwritten, no useless run accepted, a resume on other inputs or settings
// refused, adapters and checkpoints described by `info`, and SIGINT / SIGTERM ending cleanly
// (no temp file left, a checkpoint saved on SIGINT). Inputs that a test might overwrite if the
// check broke are copies in the scratch folder, never the shared files.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <thread>

#include "cli_util.h"
#include "io/adapter_file.h"

using namespace qtune::test;
namespace fs = std::filesystem;

namespace {

struct Inputs {
  std::string dir, model, tok, data;
};

// Copies of the model and tokenizer, and a small corpus, in a fresh scratch folder.
Inputs inputs() {
  Inputs in;
  in.dir = scratch_dir();
  in.model = in.dir + "/model.bin";
  in.tok = in.dir + "/tok.bin";
  fs::copy_file(stories_bin(), in.model);
  fs::copy_file(tok512(), in.tok);
  in.data = small_corpus(in.dir, "train.txt", 200);
  return in;
}

std::vector<std::string> train_args(const Inputs& in, const std::string& out, int steps) {
  return {"finetune", "-m", in.model, "-t", in.tok, "--data", in.data, "--steps", std::to_string(steps),
          "--seq", "32", "--batch", "4", "--threads", "1", "--quiet", "--out", out};
}

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& extra) {
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

std::vector<std::string> listing(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

TEST(CliReliability, ThreadsAreBounded) {
  QT_REQUIRE_STORIES();
  const Inputs in = inputs();
  for (const char* n : {"100000", "2147483647", "-1"})
    EXPECT_TRUE(IsBadInput(run_qtune({"eval", "-m", in.model, "-t", in.tok, "-d", in.data, "--threads", n}),
                           "--threads"))
        << n;
}

// An output that cannot be written is found before any work, and nothing is written.
TEST(CliReliability, BadOutputsFailFirstAndWriteNothing) {
  QT_REQUIRE_STORIES();
  const Inputs in = inputs();
  write_file(in.dir + "/afile", "x");
  fs::create_directory(in.dir + "/folder");
  const auto before = listing(in.dir);
  const std::string ok = in.dir + "/o.gguf";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {train_args(in, in.dir + "/missing/o.gguf", 100000), "does not exist"},
      {train_args(in, in.dir + "/folder", 100000), "it is a directory"},
      {train_args(in, "", 100000), "empty path"},
      {train_args(in, in.dir + "/afile/o.gguf", 100000), "not a directory"},
      {with(train_args(in, ok, 100000), {"--report", in.dir + "/missing/r.json"}), "--report"},
      {with(train_args(in, ok, 100000), {"--checkpoint", in.dir + "/folder"}), "--checkpoint"},
      {{"merge", "-m", in.model, "--adapter", in.model, "--out", in.dir + "/missing/m.gguf"}, "--out"},
      {{"quantize", "-m", in.model, "--bits", "8", "--out", in.dir + "/folder"}, "--out"},
      {{"eval", "-m", in.model, "-t", in.tok, "-d", in.data, "--report", in.dir + "/folder"}, "--report"},
  };
  for (const auto& [args, needle] : cases) {
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(IsBadInput(run_qtune(args), needle)) << needle;
    // 100000 steps would take minutes: the refusal came before any training
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 20.0) << needle;
    EXPECT_EQ(listing(in.dir), before) << needle;
  }
}

// No command overwrites one of its inputs, or writes two outputs to one file.
TEST(CliReliability, AnOutputEqualToAnInputIsRefused) {
  QT_REQUIRE_STORIES();
  const Inputs in = inputs();
  const std::string model_bytes = read_file(in.model), data_bytes = read_file(in.data), tok_bytes = read_file(in.tok);
  const std::string out = in.dir + "/o.gguf";
  EXPECT_TRUE(IsBadInput(run_qtune(with(train_args(in, out, 3), {"--report", out})), "same file"));
  EXPECT_TRUE(IsBadInput(run_qtune(train_args(in, in.model, 3)), "--model"));
  EXPECT_TRUE(IsBadInput(run_qtune(train_args(in, in.data, 3)), "--data"));
  EXPECT_TRUE(IsBadInput(run_qtune(with(train_args(in, out, 3), {"--report", in.tok})), "--tokenizer"));
  EXPECT_TRUE(IsBadInput(run_qtune(with(train_args(in, out, 3), {"--checkpoint", in.dir + "/./model.bin"})), "--model"));
  EXPECT_TRUE(IsBadInput(run_qtune({"eval", "-m", in.model, "-t", in.tok, "-d", in.data, "--report", in.model}),
                         "--model"));
  EXPECT_TRUE(IsBadInput(run_qtune({"quantize", "-m", in.model, "--bits", "8", "--out", in.model}), "--model"));
  EXPECT_EQ(read_file(in.model), model_bytes);
  EXPECT_EQ(read_file(in.data), data_bytes);
  EXPECT_EQ(read_file(in.tok), tok_bytes);
  // a checkpoint written over the --resume file it continues is the normal case
  const std::vector<std::string> constant = {"--schedule", "constant"};  // so --steps may grow on resume
  ASSERT_EQ(run_qtune(with(with(train_args(in, out, 2), constant), {"--save-every", "2"})).code, 0);
  auto r = run_qtune(with(with(train_args(in, out, 4), constant), {"--resume", out + ".ckpt.gguf"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(IsBadInput(run_qtune(with(train_args(in, out + ".ckpt.gguf", 4), {"--resume", out + ".ckpt.gguf"})),
                         "--resume"));
}

TEST(CliReliability, UselessRunsAndAdaptersAreRefused) {
  QT_REQUIRE_STORIES();
  const Inputs in = inputs();
  EXPECT_TRUE(IsBadInput(run_qtune(with(train_args(in, in.dir + "/a.gguf", 3), {"--alpha", "0"})), "--alpha"));
  EXPECT_TRUE(IsBadInput(run_qtune(with(train_args(in, in.dir + "/a.gguf", 3), {"--alpha", "nan"})), "--alpha"));
  // a LoRA adapter with alpha NaN, and one with no tensors, are refused by export-lora and merge
  qtune::TensorMap ab;
  ab.emplace("blk.0.attn_q.lora_a", qtune::Tensor({2, 64}));
  ab.emplace("blk.0.attn_q.lora_b", qtune::Tensor({64, 2}));
  qtune::write_lora_adapter(in.dir + "/nan.gguf", ab, {}, {}, std::nanf(""));
  qtune::write_lora_adapter(in.dir + "/empty.gguf", {}, {}, {}, 16.0f);
  for (const char* f : {"nan.gguf", "empty.gguf"}) {
    const std::string a = in.dir + "/" + f;
    EXPECT_TRUE(IsBadInput(run_qtune({"export-lora", "--adapter", a, "--out", in.dir + "/e.gguf"}), a)) << f;
    EXPECT_TRUE(IsBadInput(run_qtune({"merge", "-m", in.model, "--adapter", a, "--out", in.dir + "/m.gguf"}), a)) << f;
  }
  EXPECT_FALSE(fs::exists(in.dir + "/e.gguf"));
  EXPECT_FALSE(fs::exists(in.dir + "/m.gguf"));
  EXPECT_TRUE(IsBadInput(run_qtune({"generate", "-m", in.model, "-t", in.tok, "-n", "1048576"}), "at most 511"));
  EXPECT_TRUE(IsBadInput(run_qtune({"merge", "-m", in.model, "--adapter", in.model, "--out", in.dir + "/m.gguf",
                                    "--group", "-5"}),
                         "--group"));
  EXPECT_TRUE(IsBadInput(run_qtune({"merge", "-m", in.model, "--adapter", in.model, "--out", in.dir + "/m.gguf",
                                    "--bits", ""}),
                         "empty value"));
  EXPECT_TRUE(IsBadInput(run_qtune({"finetune", "--init-config", "dim=16,hidden=32,layers=1,heads=2,kv_heads=2,seq=8",
                                    "-t", in.tok, "--method", "full", "--data", in.data, "--seq", "16", "--out",
                                    in.dir + "/p.gguf"}),
                         "context of --init-config (8)"));
}

// --resume continues exactly or not at all: another model, data, or setting is named.
TEST(CliReliability, ResumeRefusesOtherInputsAndSettings) {
  QT_REQUIRE_STORIES();
  const Inputs in = inputs();
  const std::string out = in.dir + "/o.gguf", ckpt = out + ".ckpt.gguf";
  ASSERT_EQ(run_qtune(with(train_args(in, out, 2), {"--save-every", "2"})).code, 0);
  const std::string other_data = small_corpus(in.dir, "other.txt", 200, 500);
  auto resume = [&](std::vector<std::string> args) { return run_qtune(with(args, {"--resume", ckpt})); };
  auto a = train_args(in, out, 2);
  EXPECT_TRUE(IsBadInput(resume(with(a, {"--lr", "3e-4"})), "--lr"));
  EXPECT_TRUE(IsBadInput(resume(with(a, {"--schedule", "linear"})), "--schedule"));
  EXPECT_TRUE(IsBadInput(resume(with(a, {"--warmup", "1"})), "--warmup"));
  EXPECT_TRUE(IsBadInput(resume(with(a, {"--weight-decay", "0.1"})), "--weight-decay"));
  EXPECT_TRUE(IsBadInput(resume(train_args(in, out, 5)), "--steps"));  // cosine: the total sets the rates
  auto other = a;
  other[2] = stories_v1_bin();  // the same weights, another file
  EXPECT_TRUE(IsBadInput(resume(other), "another --model"));
  other = a;
  other[6] = other_data;
  EXPECT_TRUE(IsBadInput(resume(other), "another --data"));
  auto ok = resume(a);
  EXPECT_EQ(ok.code, 0) << ok.err;
}

TEST(CliReliability, InfoDescribesAdaptersAndCheckpoints) {
  QT_REQUIRE_STORIES();
  const Inputs in = inputs();
  const std::string out = in.dir + "/q.gguf";
  ASSERT_EQ(run_qtune(with(train_args(in, out, 2), {"--method", "qalora", "--save-every", "2", "--rank", "4"})).code, 0);
  auto a = run_qtune({"info", out});
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_NE(a.out.find("qtune adapter"), std::string::npos) << a.out;
  EXPECT_NE(a.out.find("--rank 4"), std::string::npos) << a.out;
  auto c = run_qtune({"info", "--json", out + ".ckpt.gguf"});
  ASSERT_EQ(c.code, 0) << c.err;
  const auto j = nlohmann::json::parse(c.out);
  EXPECT_EQ(j["kind"], "checkpoint");
  EXPECT_EQ(j["step"], 2);
  EXPECT_EQ(j["method"]["method"], "qalora");
}

// SIGINT during finetune: the step finishes, a checkpoint is written, exit 130, and resuming it
// ends where the uninterrupted run ends. SIGTERM at any moment (checkpoints written every step)
// exits 143 and never leaves a temp file.
TEST(CliReliability, SignalsEndCleanly) {
  QT_REQUIRE_STORIES();
  const Inputs in = inputs();
  const std::string ref = in.dir + "/ref.gguf", out = in.dir + "/o.gguf";
  auto args = [&](const std::string& o) {
    return with(train_args(in, o, 300), {"--schedule", "constant", "--report", o + ".json"});
  };
  ASSERT_EQ(run_qtune(args(ref)).code, 0);
  const int pid = spawn_qtune(args(out), in.dir);
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  ::kill(pid, SIGINT);
  ASSERT_EQ(wait_qtune(pid), 130) << read_file(in.dir + "/bg.err");
  EXPECT_NE(read_file(in.dir + "/bg.err").find("--resume"), std::string::npos) << read_file(in.dir + "/bg.err");
  EXPECT_FALSE(fs::exists(out)) << "an interrupted run writes no adapter";
  auto r = run_qtune(with(args(out), {"--resume", out + ".ckpt.gguf"}));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_file(out), read_file(ref)) << "the resumed adapter differs from the uninterrupted one";

  const std::string dir = in.dir + "/term";
  fs::create_directory(dir);
  for (int delay_ms : {150, 300, 450, 600, 750}) {
    const int p = spawn_qtune(with(train_args(in, dir + "/t.gguf", 100000), {"--save-every", "1"}), dir);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    ::kill(p, SIGTERM);
    EXPECT_EQ(wait_qtune(p), 143);
    for (const auto& name : listing(dir)) EXPECT_EQ(name.find(".tmp."), std::string::npos) << name << " left behind";
  }
}
