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
      {"bf17", "expected f32, bf16 or gse:<spec>"},
      {"", "expected f32, bf16 or gse:<spec>"},
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

// A GSE run end to end: the report's memory object (parts that add up, --save-act gse's copies
// far smaller than float's), the one stderr line, merge of its adapter, and a resume with another
// --gemm refused by name.
TEST(CliGsq, GseRunReportsMemoryMergesAndResumesOnlyAsTrained) {
  QT_REQUIRE_STORIES();
  const Corpus c = corpus();
  auto run_with = [&](const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> args = finetune(c, "lora", out, 3);
    args.insert(args.end(), extra.begin(), extra.end());
    const RunResult r = run_qtune(args);
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("memory: peak RSS "), std::string::npos) << r.err;
    return read_json(out + ".json");
  };
  const std::string gse = c.dir + "/gse.gguf", f32 = c.dir + "/f32.gguf";
  const nlohmann::json jg =
      run_with(gse, {"--gemm", "gse:b=8,round=stochastic", "--gemm-attention", "--save-act", "gse"});
  const nlohmann::json jf = run_with(f32, {});
  const nlohmann::json js = run_with(c.dir + "/gse_act.gguf", {"--save-act", "gse"});
  EXPECT_EQ(jg["method"]["gemm"], "gse:b=8,g=32,e=8,rule=ceil,round=stochastic");  // recorded canonical
  EXPECT_EQ(jg["method"]["save_act"], "gse");
  for (const nlohmann::json* j : {&jg, &jf}) {
    const nlohmann::json& m = (*j)["memory"];
    int64_t sum = 0;
    for (const char* k : {"weights_bytes", "adapters_bytes", "optimizer_state_bytes", "saved_activations_bytes",
                          "logits_bytes", "workspace_bytes"}) {
      EXPECT_GT(m[k].get<int64_t>(), 0) << k;
      sum += m[k].get<int64_t>();
    }
    EXPECT_EQ(m["accounted_bytes"].get<int64_t>(), sum);
    EXPECT_EQ(m["other_bytes"].get<int64_t>(), m["peak_rss_bytes"].get<int64_t>() - sum);
    EXPECT_EQ(m["peak_rss_bytes"], (*j)["peak_rss_bytes"]);
  }
  // GSE-INT8 keeps 1 + 2/32 bytes per value instead of 4 (plus a few float numbers per token),
  // compared on the same tensors: float attention saves no probabilities, --gemm-attention does
  EXPECT_LT(js["memory"]["saved_activations_bytes"].get<double>(),
            0.3 * jf["memory"]["saved_activations_bytes"].get<double>());
  EXPECT_GT(jg["memory"]["saved_activations_bytes"].get<double>(),
            js["memory"]["saved_activations_bytes"].get<double>());
  EXPECT_EQ(jg["memory"]["adapters_bytes"], jf["memory"]["adapters_bytes"]);

  const RunResult m = run_qtune({"merge", "-m", stories_bin(), "--adapter", gse, "--out", c.dir + "/gse.merged.gguf"});
  EXPECT_EQ(m.code, 0) << m.err;
  // a resume with the same spec spelled otherwise continues; with another rounding it is refused
  std::vector<std::string> again = finetune(c, "lora", gse, 3);
  again.insert(again.end(), {"--save-act", "gse", "--gemm-attention", "--resume", gse + ".ckpt.gguf", "--gemm"});
  again.push_back("gse:round=stochastic,g=32");
  const RunResult same = run_qtune(again);
  EXPECT_EQ(same.code, 0) << same.err;
  again.back() = "gse:b=8";
  EXPECT_TRUE(IsBadInput(run_qtune(again), "--gemm"));
}

// Stochastic rounding is keyed by the micro-batch over the whole run: a run resumed from step 2
// continues the uninterrupted one bit for bit.
TEST(CliGsq, StochasticRunResumesExactly) {
  QT_REQUIRE_STORIES();
  const Corpus c = corpus();
  auto args = [&](const std::string& out, int steps) {
    std::vector<std::string> a = finetune(c, "qlora", out, steps);
    a.insert(a.end(), {"--schedule", "constant", "--grad-accum", "2", "--gemm", "gse:b=6,round=stochastic",
                       "--save-act", "gse"});
    return a;
  };
  const std::string whole = c.dir + "/whole.gguf", part = c.dir + "/part.gguf";
  ASSERT_EQ(run_qtune(args(whole, 4)).code, 0);
  ASSERT_EQ(run_qtune(args(part, 2)).code, 0);
  std::vector<std::string> resume = args(part, 4);
  resume.insert(resume.end(), {"--resume", part + ".ckpt.gguf"});
  const RunResult r = run_qtune(resume);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_json(whole + ".json")["loss_curve"], read_json(part + ".json")["loss_curve"]);
  EXPECT_EQ(read_file(whole), read_file(part));  // the adapter, byte for byte
}
