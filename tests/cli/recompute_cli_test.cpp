// finetune --recompute (activation checkpointing) end to end: the same loss and validation
// curves as without it, recorded in the report's method object, less saved-activation memory;
// refused with --save-act gse and by dit-train.
#include <gtest/gtest.h>

#include "cli_util.h"

using namespace qtune::test;

TEST(CliRecompute, SameCurvesLessMemory) {
  QT_REQUIRE_STORIES();
  const Corpus c = corpus();
  for (const char* method : {"qlora", "full"}) {
    SCOPED_TRACE(method);
    const std::string plain = c.dir + "/plain_" + method + ".gguf", rec = c.dir + "/rec_" + method + ".gguf";
    const RunResult a = run_qtune(finetune(c, method, plain, 3));
    ASSERT_EQ(a.code, 0) << a.err;
    std::vector<std::string> args = finetune(c, method, rec, 3);
    args.push_back("--recompute");
    const RunResult b = run_qtune(args);
    ASSERT_EQ(b.code, 0) << b.err;
    const nlohmann::json ja = read_json(plain + ".json"), jb = read_json(rec + ".json");
    EXPECT_EQ(ja["method"]["recompute"], false);
    EXPECT_EQ(jb["method"]["recompute"], true);
    EXPECT_EQ(jb["loss_curve"], ja["loss_curve"]);  // bit for bit: the same kernels on the same inputs
    EXPECT_EQ(jb["val_curve"], ja["val_curve"]);
    EXPECT_LT(jb["memory"]["saved_activations_bytes"].get<double>(),
              0.5 * ja["memory"]["saved_activations_bytes"].get<double>());
  }
}

TEST(CliRecompute, RefusedWhereItCannotRun) {
  const std::vector<std::string> ft = {"finetune", "--model", "absent.bin", "--data", "absent.txt", "--out",
                                       scratch_dir() + "/never.gguf", "--recompute", "--save-act", "gse"};
  EXPECT_TRUE(IsBadInput(run_qtune(ft), "--recompute and --save-act gse"));
  const std::vector<std::string> dit = {"dit-train", "--data", "absent", "--init-config", "patch=7,dim=32,depth=1,heads=2",
                                        "--method", "full", "--out", scratch_dir() + "/never.gguf", "--recompute"};
  EXPECT_TRUE(IsBadInput(run_qtune(dit), "--recompute"));
}
