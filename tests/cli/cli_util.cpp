#include "cli_util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace qtune::test {

std::vector<std::string> RunResult::err_lines() const {
  std::vector<std::string> lines;
  std::istringstream in(err);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

namespace {

// fork + exec with stdout/stderr redirected to the given files. limit_seconds > 0: the child
// sets alarm() before exec (alarms survive execve), so a qtune that blocks is killed by SIGALRM
// (exit 128 + 14) instead of hanging the test.
int start(std::vector<std::string> full, const std::string& out, const std::string& err, unsigned limit_seconds) {
  std::vector<char*> argv;
  for (auto& a : full) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    int fo = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int fe = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fo < 0 || fe < 0) ::_exit(127);
    ::dup2(fo, 1);
    ::dup2(fe, 2);
    if (limit_seconds > 0) ::alarm(limit_seconds);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

std::string temp_base() {
  static int counter = 0;
  std::string base = std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp";
  return base + "/qtune_cli_run_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
}

}  // namespace

int wait_qtune(int pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) < 0) return -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::vector<std::string> qtune_argv(const std::vector<std::string>& args) {
  std::vector<std::string> full = {QTUNE_BINARY};
  full.insert(full.end(), args.begin(), args.end());
  return full;
}

RunResult run_qtune(const std::vector<std::string>& args, unsigned limit_seconds) {
  return run_program(qtune_argv(args), limit_seconds);
}

RunResult run_program(const std::vector<std::string>& argv, unsigned limit_seconds) {
  std::string base = temp_base();
  RunResult r;
  int pid = start(argv, base + ".out", base + ".err", limit_seconds);
  r.code = wait_qtune(pid);
  r.out = read_file(base + ".out");
  r.err = read_file(base + ".err");
  std::remove((base + ".out").c_str());
  std::remove((base + ".err").c_str());
  return r;
}

int spawn_qtune(const std::vector<std::string>& args, const std::string& dir) {
  return spawn_program(qtune_argv(args), dir);
}

int spawn_program(const std::vector<std::string>& argv, const std::string& dir) {
  return start(argv, dir + "/bg.out", dir + "/bg.err", 0);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

nlohmann::json read_json(const std::string& path) {
  std::string text = read_file(path);
  EXPECT_FALSE(text.empty()) << "report missing or empty: " << path;
  return nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
}

std::string stories_bin() { return shared_dir() + "/models/stories260K/stories260K.bin"; }
std::string stories_v1_bin() { return shared_dir() + "/models/stories260K/stories260K_v1.bin"; }
std::string tok512() { return shared_dir() + "/models/stories260K/tok512.bin"; }
std::string kjv() { return shared_dir() + "/data/kjv.txt"; }

std::string small_corpus(const std::string& dir, const std::string& name, int lines, int skip) {
  std::ifstream in(kjv());
  std::string out, l;
  for (int i = 0; i < skip + lines && std::getline(in, l); ++i)
    if (i >= skip) out += l + "\n";
  std::string path = dir + "/" + name;
  write_file(path, out);
  return path;
}

::testing::AssertionResult IsBadInput(const RunResult& r, const std::string& needle) {
  auto lines = r.err_lines();
  if (r.code != 2) return ::testing::AssertionFailure() << "exit code " << r.code << ", stderr:\n" << r.err;
  if (lines.size() != 1)
    return ::testing::AssertionFailure() << lines.size() << " stderr lines, want 1:\n" << r.err;
  if (lines[0].rfind("error: ", 0) != 0) return ::testing::AssertionFailure() << "no 'error: ' prefix: " << lines[0];
  if (lines[0].find(needle) == std::string::npos)
    return ::testing::AssertionFailure() << "'" << needle << "' not named in: " << lines[0];
  return ::testing::AssertionSuccess() << lines[0];
}

Corpus corpus() {
  Corpus c;
  c.dir = scratch_dir();
  c.train = small_corpus(c.dir, "train.txt", 300);
  c.val = small_corpus(c.dir, "val.txt", 40, 300);
  return c;
}

std::vector<std::string> finetune(const Corpus& c, const std::string& method, const std::string& out, int steps) {
  std::vector<std::string> args = {"finetune", "-m", stories_bin(), "-t", tok512(), "--data", c.train, "--val-file",
                                   c.val, "--method", method, "--steps", std::to_string(steps), "--save-every",
                                   std::to_string(steps), "--batch", "4", "--seq", "64", "--lr", "3e-3", "--seed", "3",
                                   "--threads", "1", "--eval-batches", "0", "--out", out, "--report", out + ".json"};
  if (method != "full") args.insert(args.end(), {"--rank", "4"});  // --rank does not apply to full
  return args;
}

double eval_ppl(const std::string& model, const std::string& data, const std::string& report,
                std::vector<std::string> extra) {
  std::vector<std::string> args = {"eval", "-m", model, "-t", tok512(), "--data", data, "--seq", "64", "--batch",
                                   "4", "--report", report};
  args.insert(args.end(), extra.begin(), extra.end());
  auto r = run_qtune(args);
  EXPECT_EQ(r.code, 0) << r.err;
  auto j = read_json(report);
  return j.value("perplexity", -1.0);
}

nlohmann::json info_json(const std::string& model) {
  auto r = run_qtune({"info", "--json", model});
  EXPECT_EQ(r.code, 0) << r.err;
  return nlohmann::json::parse(r.out, nullptr, false);
}

}  // namespace qtune::test
