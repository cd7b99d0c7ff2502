// tests/cli/cli_util.h — running the `qtune` binary as a subprocess from gtest.
#pragma once
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_util.h"

namespace qtune::test {

struct RunResult {
  int code = -1;        // exit status; 128 + signal if killed
  std::string out;      // stdout
  std::string err;      // stderr
  std::vector<std::string> err_lines() const;
};

// Runs QTUNE_BINARY with args (no shell: arguments are passed as they are). A run longer than
// limit_seconds is killed by SIGALRM (code 142): a test fails rather than hangs.
RunResult run_qtune(const std::vector<std::string>& args, unsigned limit_seconds = 600);
// Starts it in the background (stdout/stderr to files under dir); returns the pid.
int spawn_qtune(const std::vector<std::string>& args, const std::string& dir);
// The same for any program: argv[0] is its path.
RunResult run_program(const std::vector<std::string>& argv, unsigned limit_seconds = 600);
int spawn_program(const std::vector<std::string>& argv, const std::string& dir);
// QTUNE_BINARY followed by args.
std::vector<std::string> qtune_argv(const std::vector<std::string>& args);
// waitpid + exit status as run_qtune reports it.
int wait_qtune(int pid);

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& bytes);
nlohmann::json read_json(const std::string& path);

// Paths of the shared stories260K files.
std::string stories_bin();
std::string stories_v1_bin();
std::string tok512();
std::string kjv();

// A small text corpus (the first n lines of KJV) written to dir/name; returns its path.
std::string small_corpus(const std::string& dir, const std::string& name, int lines, int skip = 0);

// A scratch dir with train.txt (the first 300 KJV lines) and val.txt (the next 40).
struct Corpus {
  std::string dir, train, val;
};
Corpus corpus();

// finetune args on stories260K: --method, rank 4, `steps` steps (checkpoint at the end), batch 4
// × seq 64, lr 3e-3, seed 3, one thread, full validation on val; report at out + ".json".
std::vector<std::string> finetune(const Corpus& c, const std::string& method, const std::string& out, int steps);

// `qtune eval` (seq 64, batch 4) → perplexity from its report.
double eval_ppl(const std::string& model, const std::string& data, const std::string& report,
                std::vector<std::string> extra = {});

// `qtune info --json`.
nlohmann::json info_json(const std::string& model);

// The bad-input contract: exit code 2 and exactly one stderr line "error: ..." containing `needle`.
::testing::AssertionResult IsBadInput(const RunResult& r, const std::string& needle);

}  // namespace qtune::test

#define QT_REQUIRE_STORIES()         \
  do {                               \
    QT_REQUIRE_SHARED(::qtune::test::stories_bin()); \
    QT_REQUIRE_SHARED(::qtune::test::tok512());      \
  } while (0)
