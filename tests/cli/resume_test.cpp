// Kill-and-resume: a finetune SIGKILLed after its first checkpoint and resumed with --resume
// produces exactly the loss curve of an uninterrupted run, and a SIGKILL never leaves a partial
// output at a final path.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "cli_util.h"

using namespace qtune::test;
namespace fs = std::filesystem;

namespace {

// lora on stories260K, small enough for a few seconds; same seed and threads every time.
std::vector<std::string> finetune_args(const std::string& data, const std::string& out) {
  return {"finetune", "--model", stories_bin(), "--tokenizer", tok512(), "--data", data, "--method", "lora",
          "--rank", "4", "--steps", "40", "--save-every", "10", "--batch", "4", "--seq", "64", "--lr", "3e-3",
          "--seed", "5", "--threads", "1", "--out", out, "--report", out + ".json"};
}

// Polls (1 ms) until `path` exists or the process exits; returns true if it exists while alive.
bool wait_for_file(int pid, const std::string& path, double timeout_s) {
  auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < timeout_s) {
    if (exists(path)) return true;
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return false;  // finished (or died) first
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

// Files in dir that are not temp files ("*.tmp.<pid>").
std::vector<std::string> final_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string n = e.path().filename().string();
    if (n.find(".tmp.") == std::string::npos) out.push_back(n);
  }
  return out;
}

}  // namespace

TEST(CliResume, KillAfterFirstCheckpointThenResumeGivesTheSameLossCurve) {
  QT_REQUIRE_STORIES();
  std::string dir = scratch_dir();
  std::string data = small_corpus(dir, "train.txt", 400);

  // Uninterrupted reference run.
  auto ref = run_qtune(finetune_args(data, dir + "/ref.gguf"));
  ASSERT_EQ(ref.code, 0) << ref.err;
  auto ref_report = read_json(dir + "/ref.gguf.json");
  ASSERT_EQ(ref_report["loss_curve"].size(), 40u);

  // Interrupted run: SIGKILL as soon as the first checkpoint is in place.
  std::string out = dir + "/run.gguf", ckpt = out + ".ckpt.gguf";
  int pid = spawn_qtune(finetune_args(data, out), dir);
  ASSERT_TRUE(wait_for_file(pid, ckpt, 60)) << "no checkpoint appeared before the run ended: "
                                            << read_file(dir + "/bg.err");
  ::kill(pid, SIGKILL);
  EXPECT_EQ(wait_qtune(pid), 128 + SIGKILL) << "the run finished before it could be killed";
  EXPECT_FALSE(exists(out)) << "a killed run left an output";
  EXPECT_FALSE(exists(out + ".json")) << "a killed run left a report";

  auto args = finetune_args(data, out);
  args.insert(args.end(), {"--resume", ckpt});
  auto resumed = run_qtune(args);
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  auto report = read_json(out + ".json");
  int64_t from = report["resumed_from_step"].get<int64_t>();
  EXPECT_GE(from, 10);
  EXPECT_LT(from, 40);
  EXPECT_EQ(from % 10, 0);
  EXPECT_EQ(report["loss_curve"], ref_report["loss_curve"]);
  EXPECT_EQ(report["val_perplexity"], ref_report["val_perplexity"]);
  // The resumed adapter is bit-identical to the uninterrupted one.
  EXPECT_EQ(read_file(out), read_file(dir + "/ref.gguf"));
}

TEST(CliResume, SigkillAtAnyMomentLeavesNoPartialOutput) {
  QT_REQUIRE_STORIES();
  std::string dir = scratch_dir();
  std::string data = small_corpus(dir, "train.txt", 200);
  std::string out = dir + "/o.gguf", check_dir = dir + "/check";
  fs::create_directory(check_dir);
  // Kill at increasing delays; whatever exists at a final path afterwards must be usable.
  int checked = 0;
  for (int delay_ms : {30, 150, 400, 900}) {
    int pid = spawn_qtune(finetune_args(data, out), dir);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    ::kill(pid, SIGKILL);
    wait_qtune(pid);
    for (const auto& f : final_files(dir)) {
      if (f == "train.txt" || f == "check" || f.rfind("bg.", 0) == 0) continue;
      ++checked;
      if (f == "o.gguf") {
        auto r = run_qtune({"export-lora", "--adapter", out, "--out", check_dir + "/c.gguf"});
        EXPECT_EQ(r.code, 0) << "after kill at " << delay_ms << " ms, " << f << " is unusable: " << r.err;
      } else if (f == "o.gguf.json") {
        EXPECT_FALSE(read_json(dir + "/" + f).is_discarded()) << f;
      } else if (f == "o.gguf.ckpt.gguf") {
        // export-lora reads adapters and checkpoints alike, validating the whole file
        auto r = run_qtune({"export-lora", "--adapter", dir + "/" + f, "--out", check_dir + "/c.gguf"});
        EXPECT_EQ(r.code, 0) << "after kill at " << delay_ms << " ms, " << f << " is unusable: " << r.err;
      } else {
        ADD_FAILURE() << "unexpected file " << f;
      }
    }
  }
  EXPECT_GT(checked, 0) << "no kill happened after an output was written: the delays are too short";
}
