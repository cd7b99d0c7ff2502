// End-to-end: `qtune generate` and `qtune info` on the real stories260K model.
#include <gtest/gtest.h>

#include <sstream>

#include "cli_util.h"

using namespace qtune::test;

namespace {

// The known-good greedy continuation of BOS (shared/models/README.md), parsed from the README
// itself so the test does not carry its own copy of the expected values.
std::string readme_greedy_ids() {
  std::string readme = read_file(shared_dir() + "/models/README.md");
  auto at = readme.find("first 20 ids:");
  if (at == std::string::npos) return "";
  auto open = readme.find('[', at), close = readme.find(']', at);
  std::string ids = readme.substr(open + 1, close - open - 1), out;
  for (char c : ids)
    if (c != ',') out += c;
  return out;
}

}  // namespace

TEST(CliGenerate, GreedyIdsFromBosMatchKnownGood) {
  QT_REQUIRE_STORIES();
  std::string want = readme_greedy_ids();
  ASSERT_EQ(want, "403 407 261 378 432 383 286 261 376 298 315 421 395 317 426 338 401 396 267 337");
  auto r = run_qtune({"generate", "--model", stories_bin(), "--tokenizer", tok512(), "--prompt", "", "--max-tokens",
                      "20", "--temperature", "0", "--ids"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, want + "\n");
}

TEST(CliGenerate, V1CheckpointGivesTheSameIds) {
  QT_REQUIRE_STORIES();
  QT_REQUIRE_SHARED(stories_v1_bin());
  auto r = run_qtune({"generate", "--model", stories_v1_bin(), "--tokenizer", tok512(), "--prompt", "",
                      "--max-tokens", "20", "--temperature", "0", "--ids"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, readme_greedy_ids() + "\n");
}

TEST(CliGenerate, TextContinuesThePromptAndPromptIdsAreNotPrinted) {
  QT_REQUIRE_STORIES();
  auto text = run_qtune({"generate", "-m", stories_bin(), "-t", tok512(), "--prompt", "Once upon a time",
                         "--max-tokens", "12", "--temperature", "0"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_EQ(text.out.rfind("Once upon a time", 0), 0u) << text.out;
  EXPECT_GT(text.out.size(), std::string("Once upon a time\n").size());
  // From BOS the model greedily says " Once upon a time," (ids 403 407 261 378 ...). Prompting
  // with that text must continue after it, so the printed ids are the greedy ids minus the prefix.
  auto ids = run_qtune({"generate", "-m", stories_bin(), "-t", tok512(), "--prompt", "Once upon a time",
                        "--max-tokens", "3", "--temperature", "0", "--ids"});
  ASSERT_EQ(ids.code, 0) << ids.err;
  std::istringstream in(ids.out);
  int n = 0;
  for (int id; in >> id;) ++n;
  EXPECT_EQ(n, 3) << ids.out;
}

TEST(CliGenerate, SamplingIsReproducibleWithASeed) {
  QT_REQUIRE_STORIES();
  std::vector<std::string> args = {"generate", "-m", stories_bin(), "-t", tok512(), "--prompt", "", "--max-tokens",
                                   "30", "--temperature", "1.0", "--top-p", "0.9", "--ids"};
  auto a1 = args, a2 = args, b = args;
  a1.insert(a1.end(), {"--seed", "7"});
  a2.insert(a2.end(), {"--seed", "7"});
  b.insert(b.end(), {"--seed", "8"});
  auto r1 = run_qtune(a1), r2 = run_qtune(a2), r3 = run_qtune(b);
  ASSERT_EQ(r1.code, 0) << r1.err;
  EXPECT_EQ(r1.out, r2.out);
  EXPECT_NE(r1.out, r3.out);
}

TEST(CliInfo, DescribesStories260K) {
  QT_REQUIRE_STORIES();
  auto r = run_qtune({"info", stories_bin(), "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["config"]["dim"], 64);
  EXPECT_EQ(j["config"]["n_layers"], 5);
  EXPECT_EQ(j["config"]["n_kv_heads"], 4);
  EXPECT_EQ(j["config"]["vocab_size"], 512);
  EXPECT_EQ(j["parameters"], 260032);  // models/README.md
  EXPECT_EQ(j["tensors"].size(), 2u + 9u * 5u);  // token_embd, output_norm, 9 per layer (tied classifier)
  auto human = run_qtune({"info", stories_bin()});
  ASSERT_EQ(human.code, 0) << human.err;
  EXPECT_NE(human.out.find("260032"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("blk.4.ffn_down.weight"), std::string::npos) << human.out;
}

TEST(CliHelp, EveryCommandHasHelp) {
  auto top = run_qtune({"--help"});
  EXPECT_EQ(top.code, 0);
  std::istringstream in(top.out);
  std::vector<std::string> cmds;
  bool in_list = false;
  for (std::string l; std::getline(in, l);) {
    if (l == "commands:") in_list = true;
    else if (in_list && l.size() > 2 && l[0] == ' ') cmds.push_back(l.substr(2, l.find(' ', 2) - 2));
    else in_list = false;
  }
  ASSERT_GE(cmds.size(), 2u) << top.out;
  for (const auto& c : cmds) {
    auto r = run_qtune({c, "--help"});
    EXPECT_EQ(r.code, 0) << c;
    EXPECT_NE(r.out.find("qtune " + c), std::string::npos) << c << ":\n" << r.out;
    EXPECT_TRUE(r.err.empty()) << c << ": " << r.err;
  }
}

// The speed line on stderr and --report's JSON: counts that follow from the run (prefill of the
// prompt, one decode step per generated token after the first), timings present; --quiet drops
// the line.
TEST(CliGenerate, ReportsPromptAndDecodeSpeeds) {
  QT_REQUIRE_STORIES();
  const std::string report = scratch_dir() + "/gen.json";
  auto r = run_qtune({"generate", "-m", stories_bin(), "-t", tok512(), "--prompt", "Once upon a time", "--max-tokens",
                      "5", "--temperature", "0", "--ids", "--threads", "1", "--report", report});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("tok/s"), std::string::npos) << r.err;
  const nlohmann::json j = read_json(report);
  EXPECT_EQ(j.at("command"), "generate");
  EXPECT_EQ(j.at("threads"), 1);
  EXPECT_GT(j.at("prompt_tokens").get<int>(), 1);  // BOS + the text
  EXPECT_EQ(j.at("gen_tokens"), 5);
  EXPECT_EQ(j.at("decode_steps"), 4);
  for (const char* k : {"prompt_seconds", "prompt_tok_s", "decode_seconds", "decode_tok_s"})
    EXPECT_GT(j.at(k).get<double>(), 0.0) << k;
  auto q = run_qtune({"generate", "-m", stories_bin(), "-t", tok512(), "--prompt", "", "--max-tokens", "3", "--ids",
                      "--quiet"});
  ASSERT_EQ(q.code, 0) << q.err;
  EXPECT_EQ(q.err, "");
}
