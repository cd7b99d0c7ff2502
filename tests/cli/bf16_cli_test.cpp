// --gemm bf16 on the command line: the training steps' GEMMs in bfloat16 (kernels/gemm_bf16.h),
// validation at fp32; recorded in the report; refused on a CPU without AVX512-BF16.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "cli_util.h"
#include "kernels/gemm_bf16.h"

using namespace qtune::test;

TEST(CliBf16, StepsRunInBf16AndValidationStaysFp32) {
  QT_REQUIRE_STORIES();
  if (!qtune::kernels::bf16_gemm_supported()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  const Corpus c = corpus();
  auto run_with = [&](const std::string& out, const std::string& gemm) {
    std::vector<std::string> args = finetune(c, "lora", out, 3);
    args.insert(args.end(), {"--gemm", gemm});
    const RunResult r = run_qtune(args);
    EXPECT_EQ(r.code, 0) << r.err;
    return read_json(out + ".json");
  };
  const nlohmann::json j16 = run_with(c.dir + "/bf16.gguf", "bf16"), j32 = run_with(c.dir + "/f32.gguf", "f32");
  EXPECT_EQ(j16["method"]["gemm"], "bf16");
  const auto &l16 = j16["loss_curve"], &l32 = j32["loss_curve"];
  ASSERT_EQ(l16.size(), l32.size());
  bool differs = false;
  for (size_t i = 0; i < l16.size(); ++i) {
    const double a = l16[i]["loss"].get<double>(), b = l32[i]["loss"].get<double>();
    EXPECT_NEAR(a, b, 1e-2 * b) << "step " << i + 1;  // bf16 operands: ~2^-9 relative per product
    differs = differs || a != b;
  }
  EXPECT_TRUE(differs) << "--gemm bf16 gave the fp32 losses bit for bit: the bf16 path did not run";
  // The held-out loss is fp32 arithmetic on the bf16 run's adapter: `qtune eval` of the merged
  // model scores the same windows the same way.
  const RunResult m = run_qtune({"merge", "-m", stories_bin(), "--adapter", c.dir + "/bf16.gguf", "--out",
                                 c.dir + "/bf16.merged.gguf"});
  ASSERT_EQ(m.code, 0) << m.err;
  const double ppl = eval_ppl(c.dir + "/bf16.merged.gguf", c.val, c.dir + "/eval.json");
  const double val = j16["val_curve"].back()["loss"].get<double>();
  EXPECT_NEAR(std::log(ppl), val, 1e-4);
}

TEST(CliBf16, RefusedOnACpuWithoutAvx512Bf16) {
  QT_REQUIRE_STORIES();
  const Corpus c = corpus();
  std::vector<std::string> args = finetune(c, "lora", c.dir + "/never.gguf", 2);
  args.insert(args.end(), {"--gemm", "bf16"});
  ::setenv("QTUNE_CPU", "avx2", 1);  // the kernels' cap: this CPU seen as one with AVX2 only
  const RunResult r = run_qtune(args);
  ::unsetenv("QTUNE_CPU");
  EXPECT_NE(r.code, 0);
  ASSERT_EQ(r.err_lines().size(), 1u) << r.err;
  EXPECT_NE(r.err.find("--gemm bf16 needs a CPU with AVX512-BF16 instructions; this one has avx2"), std::string::npos)
      << r.err;
  EXPECT_FALSE(exists(c.dir + "/never.gguf"));
}
