// GSQ-Tuning on the command line (--gemm, --save-act, --gemm-attention; docs/METHODS.md §9):
// malformed specs are bad input (exit 2, one line naming the problem), and the options run,
// are recorded and are checked on resume.
#include <gtest/gtest.h>

#include "cli_util.h"

using namespace qtune::test;

namespace {

// finetune with a --gemm value and whatever else; the spec is checked before any file is read.
RunResult finetune_gemm(const std::string& gemm, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"finetune", "--model", "absent.bin", "--data", "absent.txt", "--out",
                                   scratch_dir() + "/never.gguf", "--gemm", gemm};
  args.insert(args.end(), extra.begin(), extra.end());
  return run_qtune(args);
}

}  // namespace

TEST(CliGsq, MalformedGemmSpecsAreBadInput) {
  const std::pair<const char*, const char*> cases[] = {
      {"gse:b=9", "b = 9 is out of range"},
      {"gse:b=3", "b = 3 is out of range"},
      {"gse:b=8,g=33", "g = 33 is not a supported group size"},
      {"gse:e=2", "e = 2 is out of range"},
      {"gse:b=8,b=6", "key 'b' is given twice"},
      {"gse:b=eight", "b = 'eight' is not a positive integer"},
      {"gse:b=8,x=1", "unknown key 'x'"},
      {"gse:b=8,,g=32", "an empty item"},
      {"gse:b8", "item 'b8' is not key=value"},
      {"gse:rule=floor", "rule = 'floor' is not an exponent rule"},
      {"gse:round=up", "round = 'up' is not a rounding"},
      {"bf16", "expected f32 or gse:<spec>"},
      {"", "expected f32 or gse:<spec>"},
  };
  for (const auto& [spec, needle] : cases) {
    SCOPED_TRACE(spec);
    const RunResult r = finetune_gemm(spec);
    EXPECT_TRUE(IsBadInput(r, needle));
    EXPECT_TRUE(IsBadInput(r, "--gemm"));
  }
}

TEST(CliGsq, GemmOptionsRefusedWhereTheyDoNotApply) {
  EXPECT_TRUE(IsBadInput(finetune_gemm("gse", {"--method", "qalora"}),
                         "--gemm is an option of full, lora and qlora; it does not apply to --method qalora"));
  EXPECT_TRUE(IsBadInput(finetune_gemm("gse", {"--method", "loldu"}), "does not apply to --method loldu"));
  EXPECT_TRUE(IsBadInput(finetune_gemm("f32", {"--gemm-attention"}), "--gemm-attention"));
  EXPECT_TRUE(IsBadInput(finetune_gemm("f32", {"--save-act", "int8"}), "--save-act 'int8' is invalid"));
}
