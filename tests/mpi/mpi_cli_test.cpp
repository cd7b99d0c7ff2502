// Data-parallel finetune under `mpirun --oversubscribe -np 2` (core/dist.h, train/trainer.h):
// 2 ranks × batch b train exactly what 1 process × batch 2b trains (per-step losses, validation,
// the written adapter, within 1e-6 relative), a checkpoint of 2 ranks resumes only with 2, and a
// rank killed mid-run stops the job at once, leaving the last checkpoint to resume from.
// Registered only when CMake found MPI (tests/CMakeLists: test_mpi, label mpi).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "cli/cli_util.h"
#include "io/gguf.h"

using namespace qtune::test;
namespace fs = std::filesystem;

namespace {

constexpr double kTol = 1e-6;  // relative: each step's loss, each validation loss
// The adapters: ‖a − b‖/‖b‖ per tensor. With --exact-sums every sequence is computed as if alone
// (kernels::RowsPerSample) and an adapter's gradients are summed exactly per sequence
// (adapters/exact_grad.cpp), so 2 ranks write the 1-process adapter bit for bit (measured: a
// difference of 0 for every adapter method here); 1e-6 is the bound.
constexpr double kAdapterTol = 1e-6;
// Without it (and full fine-tuning, and the DiT) each rank sums its rows' gradients in float, so
// the two runs add the same terms in another order, and AdamW turns a nearly cancelling element's
// rounding into a visible part of a step. Measured after 6 steps: lora 8.7e-6, full 3.4e-6, the
// DiT (full) 3.7e-7.
constexpr double kFloatSumsTol = 1e-4;

std::vector<std::string> mpirun(int np, const std::vector<std::string>& args) {
  // Open MPI refuses to start as root (containers, CI) unless told twice; a user's value stands.
  ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
  ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  std::vector<std::string> full = {QTUNE_MPIRUN, "--oversubscribe", "-np", std::to_string(np)};
  for (auto& a : qtune_argv(args)) full.push_back(a);
  return full;
}

// finetune on stories260K: 6 steps, validation every 2 (2 global batches) and at the end (all).
std::vector<std::string> args(const Corpus& c, const std::string& method, int batch, const std::string& out,
                              std::vector<std::string> extra = {}) {
  std::vector<std::string> a = {"finetune", "-m", stories_bin(), "-t", tok512(), "--data", c.train, "--val-file",
                                c.val, "--method", method, "--steps", "6", "--eval-every", "2",
                                "--eval-batches", "2", "--batch", std::to_string(batch), "--seq", "64", "--lr",
                                "3e-3", "--seed", "3", "--threads", "1", "--out", out, "--report", out + ".json"};
  if (method != "full") a.insert(a.end(), {"--rank", "4"});
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

::testing::AssertionResult Near(double a, double b) {
  if (std::fabs(a - b) <= kTol * std::max(std::fabs(a), std::fabs(b))) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << a << " vs " << b << " (rel " << std::fabs(a - b) / std::fabs(b) << ")";
}

void expect_same_curves(const nlohmann::json& one, const nlohmann::json& two) {
  for (const char* curve : {"loss_curve", "val_curve"}) {
    ASSERT_EQ(one[curve].size(), two[curve].size()) << curve;
    for (size_t i = 0; i < one[curve].size(); ++i)
      EXPECT_TRUE(Near(one[curve][i]["loss"].get<double>(), two[curve][i]["loss"].get<double>()))
          << curve << " point " << i;
  }
  EXPECT_TRUE(Near(one["val_loss"].get<double>(), two["val_loss"].get<double>()));
  EXPECT_EQ(one["val_perplexity_windows"], two["val_perplexity_windows"]);
}

// Every tensor of two adapter (or model) files: ‖a − b‖ / ‖b‖ ≤ tol.
void expect_same_tensors(const std::string& a_path, const std::string& b_path, double tol = kAdapterTol) {
  qtune::GgufFile a(a_path), b(b_path);
  double worst_rel = 0;
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (const auto& ta : a.tensors()) {
    const qtune::GgufTensorInfo* tb = b.find_tensor(ta.name);
    ASSERT_TRUE(tb) << ta.name;
    const qtune::Tensor x = a.to_float(ta), y = b.to_float(*tb);
    ASSERT_EQ(x.numel(), y.numel()) << ta.name;
    double scale = 0, worst = 0;  // reported on failure
    for (int64_t i = 0; i < y.numel(); ++i) scale = std::max(scale, std::fabs(double(y.data[i])));
    for (int64_t i = 0; i < y.numel(); ++i) worst = std::max(worst, std::fabs(double(x.data[i]) - y.data[i]));
    const double rel = rel_err(x.data.data(), y.data.data(), y.data.size());
    // or every element within 1e-7 absolute: a tensor of pure rounding noise, like a DiT's key
    // bias (softmax is invariant to it, so its grad is 0 but for rounding; values ~1e-8)
    EXPECT_TRUE(rel <= tol || worst <= 1e-7)
        << ta.name << ": relative " << rel << ", largest element difference " << worst << " of scale " << scale;
    if (scale > 1e-6) worst_rel = std::max(worst_rel, rel);  // not over the noise tensors
  }
  std::printf("tensors: largest relative difference (norm; tensors of scale > 1e-6) %.3g\n", worst_rel);
}

void expect_two_ranks_match_one_process(const std::string& method, std::vector<std::string> extra = {},
                                        double tol = kAdapterTol) {
  SCOPED_TRACE(method);
  QT_REQUIRE_STORIES();
  const Corpus c = corpus();
  const std::string one = c.dir + "/one.gguf", two = c.dir + "/two.gguf";
  const RunResult r1 = run_qtune(args(c, method, 8, one, extra), 120);
  ASSERT_EQ(r1.code, 0) << r1.err;
  const RunResult r2 = run_program(mpirun(2, args(c, method, 4, two, extra)), 120);
  ASSERT_EQ(r2.code, 0) << r2.err;
  const nlohmann::json j1 = read_json(one + ".json"), j2 = read_json(two + ".json");
  EXPECT_EQ(j1["ranks"], 1);
  EXPECT_EQ(j2["ranks"], 2);
  EXPECT_EQ(j2["global_batch"], 8);
  expect_same_curves(j1, j2);
  expect_same_tensors(two, one, tol);
  // rank 0 alone prints its summary and writes (no second report, no rank-1 output)
  EXPECT_NE(r2.out.find("2 ranks × batch 4"), std::string::npos) << r2.out;
  EXPECT_EQ(r2.out.find("final loss"), r2.out.rfind("final loss")) << r2.out;
}

// pids of the qtune ranks mpirun started (its children).
std::vector<int> ranks_of(int mpirun_pid) {
  std::vector<int> pids;
  FILE* p = ::popen(("pgrep -P " + std::to_string(mpirun_pid)).c_str(), "r");
  for (int pid; p && std::fscanf(p, "%d", &pid) == 1;) pids.push_back(pid);
  if (p) ::pclose(p);
  return pids;
}

// waitpid with a deadline: the exit status, or -1 if still running after timeout_s.
int wait_for_exit(int pid, double timeout_s) {
  const auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < timeout_s) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return -1;
}

std::vector<std::string> kill_args(const Corpus& c, const std::string& out, const std::string& ckpt) {
  return {"finetune", "-m", stories_bin(), "-t", tok512(), "--data", c.train, "--method", "lora", "--rank", "4",
          "--steps", "60", "--save-every", "5", "--batch", "4", "--seq", "64", "--lr", "3e-3", "--seed", "5",
          "--threads", "1", "--checkpoint", ckpt, "--out", out, "--report", out + ".json"};
}

}  // namespace

TEST(MpiCli, LoraTwoRanksMatchOneProcessWithTheGlobalBatch) {
  expect_two_ranks_match_one_process("lora", {"--exact-sums"});
}
TEST(MpiCli, QloraTwoRanksMatchOneProcessWithTheGlobalBatch) {
  expect_two_ranks_match_one_process("qlora", {"--exact-sums"});
}
TEST(MpiCli, IntloraMulTwoRanksMatchOneProcessWithTheGlobalBatch) {
  expect_two_ranks_match_one_process("intlora-mul", {"--exact-sums"});
}
// int8 activations calibrated on the first 3 micro-batches: the range is the global batch's
// (a max over ranks), or the two runs would quantize differently.
TEST(MpiCli, QaloraInt8ActivationsTwoRanksMatchOneProcess) {
  expect_two_ranks_match_one_process("qalora", {"--exact-sums", "--act-bits", "8", "--act-calib", "3"});
}
TEST(MpiCli, GradAccumTwoRanksMatchOneProcess) {
  expect_two_ranks_match_one_process("lora", {"--exact-sums", "--grad-accum", "2"});
}
TEST(MpiCli, EveryOtherAdapterMethodTwoRanksMatchOneProcess) {
  for (const char* m : {"qalora", "intlora-shift", "loldu", "qloldu", "qaloldu"})
    expect_two_ranks_match_one_process(m, {"--exact-sums"});
}
// The memory options change what backward reads, not what it computes per sequence.
TEST(MpiCli, RecomputeAndGseSavedActivationsTwoRanksMatchOneProcess) {
  expect_two_ranks_match_one_process("qlora", {"--exact-sums", "--recompute"});
  expect_two_ranks_match_one_process("lora", {"--exact-sums", "--save-act", "gse"});
}
// Without --exact-sums (the default: no per-sequence cost) the runs agree closely, not exactly.
TEST(MpiCli, LoraWithFloatSumsTwoRanksMatchOneProcessClosely) {
  expect_two_ranks_match_one_process("lora", {}, kFloatSumsTol);
}
TEST(MpiCli, FullTwoRanksMatchOneProcess) { expect_two_ranks_match_one_process("full", {}, kFloatSumsTol); }

TEST(MpiCli, ResumeNeedsTheSameNumberOfRanks) {
  QT_REQUIRE_STORIES();
  const Corpus c = corpus();
  const std::string out = c.dir + "/a.gguf", ckpt = c.dir + "/a.ckpt";
  std::vector<std::string> a = args(c, "lora", 4, out, {"--save-every", "3", "--checkpoint", ckpt});
  RunResult r = run_program(mpirun(2, a), 120);
  ASSERT_EQ(r.code, 0) << r.err;
  a.insert(a.end(), {"--resume", ckpt});
  // a plain launch (1 rank) is refused with one line naming both numbers
  EXPECT_TRUE(IsBadInput(run_qtune(a, 60), "written by a run of 2 MPI rank(s) and this run has 1"));
  // and a plain checkpoint is refused by 2 ranks
  const std::string plain = c.dir + "/p.ckpt";
  std::vector<std::string> p = args(c, "lora", 4, c.dir + "/p.gguf", {"--save-every", "3", "--checkpoint", plain});
  ASSERT_EQ(run_qtune(p, 60).code, 0);
  p.insert(p.end(), {"--resume", plain});
  r = run_program(mpirun(2, p), 60);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("error: " + plain + ": was written by a run of 1 MPI rank(s) and this run has 2"),
            std::string::npos) << r.err;
}

// The uninterrupted 2-rank run (ref), then the same run started in the background (out, ckpt):
// returns mpirun's pid once the first checkpoint exists.
static int start_until_first_checkpoint(const Corpus& c, const std::string& ref, const std::string& out,
                                        const std::string& ckpt) {
  const RunResult r0 = run_program(mpirun(2, kill_args(c, ref, c.dir + "/ref.ckpt")), 300);
  EXPECT_EQ(r0.code, 0) << r0.err;
  const int pid = spawn_program(mpirun(2, kill_args(c, out, ckpt)), c.dir);
  const auto t0 = std::chrono::steady_clock::now();
  while (!exists(ckpt) && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60))
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_TRUE(exists(ckpt)) << read_file(c.dir + "/bg.err");
  return pid;
}

// Resumes the stopped run from ckpt with 2 ranks: it finishes and returns its report.
static nlohmann::json resume_to_the_end(const Corpus& c, const std::string& out, const std::string& ckpt) {
  std::vector<std::string> a = kill_args(c, out, ckpt);
  a.insert(a.end(), {"--resume", ckpt});
  const RunResult r = run_program(mpirun(2, a), 300);
  EXPECT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = read_json(out + ".json");
  EXPECT_GE(j["resumed_from_step"].get<int64_t>(), 5);
  return j;
}

TEST(MpiCli, AKilledRankStopsTheJobAndTheCheckpointResumesToTheSameRun) {
  QT_REQUIRE_STORIES();
  const Corpus c = corpus();
  const std::string ref = c.dir + "/ref.gguf", run_dir = c.dir + "/run";
  fs::create_directory(run_dir);
  const std::string out = run_dir + "/o.gguf", ckpt = run_dir + "/o.ckpt";
  const int pid = start_until_first_checkpoint(c, ref, out, ckpt);
  ASSERT_FALSE(HasFailure());
  const std::vector<int> ranks = ranks_of(pid);
  ASSERT_EQ(ranks.size(), 2u) << "mpirun's children";
  const auto t_kill = std::chrono::steady_clock::now();
  ::kill(ranks.back(), SIGKILL);
  const int code = wait_for_exit(pid, 20);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_kill).count();
  if (code < 0) ::kill(pid, SIGKILL), wait_for_exit(pid, 5);
  ASSERT_GE(code, 0) << "the job still ran 20 s after a rank died";
  EXPECT_NE(code, 0);
  EXPECT_LT(took, 10.0);
  std::printf("job stopped %.2f s after the kill, exit %d\n", took, code);
  EXPECT_FALSE(exists(out)) << "a killed job left an output";
  EXPECT_FALSE(exists(out + ".json")) << "a killed job left a report";
  for (const auto& e : fs::directory_iterator(run_dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();

  const nlohmann::json j = resume_to_the_end(c, out, ckpt), jr = read_json(ref + ".json");
  EXPECT_EQ(j["loss_curve"].size(), 60u);
  for (size_t i = 0; i < jr["loss_curve"].size(); ++i)
    EXPECT_TRUE(Near(j["loss_curve"][i]["loss"].get<double>(), jr["loss_curve"][i]["loss"].get<double>())) << i;
  expect_same_tensors(out, ref);
}

// dit-train the same way: a tiny DiT pretrained for 6 steps; 33 held-out images, so rank 1's
// shard of the last held-out batch is padding only.
TEST(MpiCli, DitTrainTwoRanksMatchOneProcess) {
  QT_REQUIRE_DATASET(fashion_mnist_dir() + "/train-images-idx3-ubyte.gz");
  const std::string dir = scratch_dir(), one = dir + "/one.gguf", two = dir + "/two.gguf";
  auto dit = [&](int batch, const std::string& out) {
    return std::vector<std::string>{
        "dit-train", "--data", fashion_mnist_dir(), "--init-config", "patch=7,dim=32,depth=1,heads=2,freq_dim=32",
        "--method", "full", "--classes", "0-1", "--steps", "6", "--lr", "3e-3", "--seed", "3", "--threads", "1",
        "--val-images", "33", "--eval-every", "2", "--eval-batches", "1", "--schedule", "constant",
        "--batch", std::to_string(batch), "--out", out, "--report", out + ".json", "-q"};
  };
  const RunResult r1 = run_qtune(dit(32, one), 120);
  ASSERT_EQ(r1.code, 0) << r1.err;
  const RunResult r2 = run_program(mpirun(2, dit(16, two)), 120);
  ASSERT_EQ(r2.code, 0) << r2.err;
  const nlohmann::json j1 = read_json(one + ".json"), j2 = read_json(two + ".json");
  EXPECT_EQ(j2["ranks"], 2);
  for (const char* curve : {"loss_curve", "val_curve"}) {
    ASSERT_EQ(j1[curve].size(), j2[curve].size()) << curve;
    for (size_t i = 0; i < j1[curve].size(); ++i)
      EXPECT_TRUE(Near(j1[curve][i]["loss"].get<double>(), j2[curve][i]["loss"].get<double>())) << curve << i;
  }
  EXPECT_EQ(j1["val_curve"].back()["images"], 33);
  EXPECT_EQ(j2["val_curve"].back()["images"], 33);
  expect_same_tensors(two, one, kFloatSumsTol);
  // int8 activations are refused on several ranks (their collectives need every rank's forward)
  std::vector<std::string> a = dit(16, dir + "/a8.gguf");
  a.insert(a.end(), {"--act-bits", "8"});
  const RunResult r3 = run_program(mpirun(2, a), 60);
  EXPECT_NE(r3.code, 0);
  EXPECT_NE(r3.err.find("error: dit-train --act-bits 8 runs in one process, not on 2 MPI ranks"), std::string::npos)
      << r3.err;
  // --exact-sums is finetune's: the DiT's conditioning products take all images at once
  const RunResult r4 = run_qtune({"dit-train", "--data", fashion_mnist_dir(), "--model", one, "--method", "lora",
                                  "--classes", "0-1", "--steps", "1", "--out", dir + "/exact.gguf", "--exact-sums"},
                                 60);
  EXPECT_NE(r4.code, 0);
  EXPECT_NE(r4.err.find("--exact-sums is an option of finetune"), std::string::npos) << r4.err;
}

// mpirun forwards SIGUSR1 to every rank (its own SIGINT ends the job at once): the ranks agree
// to stop after the same step (the flag is reduced every step), rank 0 writes the checkpoint, the
// others wait for it, and the resumed run is the uninterrupted one.
TEST(MpiCli, Usr1StopsEveryRankAfterTheSameStepWithACheckpointThatResumes) {
  QT_REQUIRE_STORIES();
  const Corpus c = corpus();
  const std::string ref = c.dir + "/ref.gguf", out = c.dir + "/o.gguf", ckpt = c.dir + "/o.ckpt";
  const int pid = start_until_first_checkpoint(c, ref, out, ckpt);
  ASSERT_FALSE(HasFailure());
  ::kill(pid, SIGUSR1);
  const int code = wait_for_exit(pid, 20);
  if (code < 0) ::kill(pid, SIGKILL), wait_for_exit(pid, 5);
  EXPECT_EQ(code, 128 + SIGUSR1) << read_file(c.dir + "/bg.err");
  const std::string err = read_file(c.dir + "/bg.err");
  EXPECT_NE(err.find("interrupted: checkpoint of step"), std::string::npos) << err;
  EXPECT_FALSE(exists(out));

  const nlohmann::json j = resume_to_the_end(c, out, ckpt), jr = read_json(ref + ".json");
  EXPECT_EQ(j["loss_curve"], jr["loss_curve"]);  // bit-identical: the same ranks, seed and threads
  expect_same_tensors(out, ref);
}
