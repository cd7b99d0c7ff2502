// End-to-end: the commands take a Hugging Face checkpoint folder for --model (stories260K
// written in HF form: names, rotate-half q/k rows, safetensors), use its tokenizer.model when no
// --tokenizer is given, and `qtune info` describes it.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "cli_util.h"
#include "hf_checkpoint_util.h"
#include "io/model_file.h"
#include "models/tiny_model.h"

using namespace qtune;
using namespace qtune::test;

namespace {

std::string stories_hf(int shards = 1) {
  const std::string dir = scratch_dir() + "/stories260K-hf";
  ::mkdir(dir.c_str(), 0755);
  HfWriteOptions o;
  o.shards = shards;
  write_hf_checkpoint(load_model(stories_bin()), dir, o);
  return dir;
}

std::string llama2_tokenizer() { return shared_dir() + "/models/llama2-tokenizer/tokenizer.model"; }

}  // namespace

TEST(CliHf, GreedyIdsOfTheHfFolderEqualThoseOfTheLlama2cFile) {
  QT_REQUIRE_STORIES();
  const std::string dir = stories_hf(2);
  std::vector<std::string> gen = {"--tokenizer", tok512(), "--prompt", "", "--max-tokens", "20", "--temperature", "0",
                                  "--ids"};
  std::vector<std::string> a = {"generate", "--model", dir}, b = {"generate", "--model", stories_bin()};
  a.insert(a.end(), gen.begin(), gen.end());
  b.insert(b.end(), gen.begin(), gen.end());
  const RunResult hf = run_qtune(a), l2c = run_qtune(b);
  ASSERT_EQ(hf.code, 0) << hf.err;
  ASSERT_EQ(l2c.code, 0) << l2c.err;
  EXPECT_EQ(hf.out, l2c.out);
  EXPECT_EQ(hf.out.rfind("403 407 261 378", 0), 0u) << hf.out;  // shared/models/README.md
}

TEST(CliHf, InfoDescribesTheFolderAndQuantizeReadsIt) {
  QT_REQUIRE_STORIES();
  const std::string dir = stories_hf(2);
  const nlohmann::json j = info_json(dir);
  EXPECT_EQ(j["format"], "hf-safetensors");
  EXPECT_EQ(j["weight_files"].size(), 2u);
  EXPECT_EQ(j["tokenizer"], "");
  EXPECT_EQ(j["parameters"], info_json(stories_bin())["parameters"]);
  const RunResult human = run_qtune({"info", dir + "/config.json"});
  ASSERT_EQ(human.code, 0) << human.err;
  EXPECT_NE(human.out.find("format:        hf-safetensors"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("weight files:  2 ("), std::string::npos) << human.out;

  // the same Q8_0 file as from the llama2.c form of the weights
  const RunResult q1 = run_qtune({"quantize", "-m", dir, "--bits", "8", "-o", dir + "/../q_hf.gguf"});
  const RunResult q2 = run_qtune({"quantize", "-m", stories_bin(), "--bits", "8", "-o", dir + "/../q_l2c.gguf"});
  ASSERT_EQ(q1.code, 0) << q1.err;
  ASSERT_EQ(q2.code, 0) << q2.err;
  EXPECT_EQ(read_file(dir + "/../q_hf.gguf"), read_file(dir + "/../q_l2c.gguf"));
}

TEST(CliHf, TheFoldersTokenizerModelIsUsedWithoutTokenizerFlag) {
  QT_REQUIRE_SHARED(llama2_tokenizer());
  LlamaConfig c;
  c.dim = 16, c.hidden_dim = 32, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 1, c.vocab_size = 32000, c.seq_len = 16;
  c.tied_classifier = true;
  const std::string dir = scratch_dir() + "/tiny-hf";
  ::mkdir(dir.c_str(), 0755);
  write_hf_checkpoint(random_llama(c, "tiny", 3, 0.5, [](int64_t) { return 0.2; }), dir);
  const std::vector<std::string> gen = {"generate", "-m", dir, "--prompt", "Hello world", "--max-tokens", "2",
                                        "--temperature", "0"};
  EXPECT_TRUE(IsBadInput(run_qtune(gen), dir + ": the checkpoint folder has no tokenizer.model; pass --tokenizer"));
  write_file(dir + "/tokenizer.model", read_file(llama2_tokenizer()));
  const RunResult r = run_qtune(gen);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Hello world", 0), 0u) << r.out;
  EXPECT_EQ(info_json(dir)["tokenizer"], dir + "/tokenizer.model");
  // quantize embeds that vocabulary: the GGUF then generates without any tokenizer file
  const RunResult q = run_qtune({"quantize", "-m", dir, "--bits", "32", "-o", dir + "/../t.gguf"});
  ASSERT_EQ(q.code, 0) << q.err;
  const RunResult g = run_qtune({"generate", "-m", dir + "/../t.gguf", "--prompt", "Hello world", "--max-tokens", "2",
                                 "--temperature", "0"});
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_EQ(g.out, r.out);
}

TEST(CliHf, BadFoldersAreOneLineErrors) {
  QT_REQUIRE_STORIES();
  const std::string empty = scratch_dir();
  EXPECT_TRUE(IsBadInput(run_qtune({"info", empty}), "not a regular file (a directory), and no config.json in it"));
  const std::string dir = stories_hf();
  nlohmann::json cfg = read_json(dir + "/config.json");
  cfg["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
  write_file(dir + "/config.json", cfg.dump());
  EXPECT_TRUE(IsBadInput(run_qtune({"generate", "-m", dir, "-t", tok512(), "--prompt", "", "--max-tokens", "2"}),
                         dir + "/config.json: rope_scaling"));
  ::unlink((dir + "/model.safetensors").c_str());
  EXPECT_TRUE(IsBadInput(run_qtune({"eval", "-m", dir, "-t", tok512(), "--data", dir + "/config.json"}),
                         "no model.safetensors or model.safetensors.index.json"));
}
