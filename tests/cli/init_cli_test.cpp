// `qtune init`: a random model written without training, streamed to disk.
#include <dirent.h>
#include <sys/wait.h>

#include <cstdlib>
#include <cstring>

#include "cli/cli_util.h"
#include "io/model_file.h"
#include "models/init.h"

using namespace qtune::test;

namespace {

const char* kTiny = "dim=32,hidden=64,layers=2,heads=4,kv_heads=2,seq=64";


}  // namespace

// The file holds, tensor for tensor, what finetune --init-config starts from (random_model) for
// the same seed, with the tokenizer's vocabulary: it loads, trains and evaluates.
TEST(Init, WritesTheInitConfigModelForTheSeed) {
  QT_REQUIRE_STORIES();
  const std::string dir = scratch_dir(), out = dir + "/r.gguf";
  RunResult r = run_qtune({"init", "--config", kTiny, "--tokenizer", tok512(), "--seed", "7", "--out", out});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("wrote " + out), std::string::npos) << r.out;
  qtune::LlamaConfig c = qtune::parse_config_spec(kTiny);
  c.vocab_size = 512;
  const qtune::ModelFile want = qtune::random_model(c, 7);
  const qtune::ModelFile got = qtune::load_model(out);
  EXPECT_EQ(got.config.n_kv_heads, 2);
  EXPECT_EQ(got.config.seq_len, 64);
  EXPECT_TRUE(got.config.tied_classifier);
  ASSERT_EQ(got.tensors.size(), want.tensors.size());
  for (const auto& [name, t] : want.tensors) {
    ASSERT_TRUE(got.tensors.count(name)) << name;
    EXPECT_EQ(std::memcmp(got.tensors.at(name).ptr(), t.ptr(), size_t(t.numel()) * sizeof(float)), 0) << name;
  }
  // another seed, another model
  RunResult r2 = run_qtune({"init", "--config", kTiny, "--tokenizer", tok512(), "--seed", "8", "--out", dir + "/s.gguf"});
  ASSERT_EQ(r2.code, 0) << r2.err;
  EXPECT_NE(read_file(out), read_file(dir + "/s.gguf"));

  // the vocabulary is embedded: no --tokenizer needed downstream
  const std::string data = small_corpus(dir, "train.txt", 40);
  RunResult ft = run_qtune({"finetune", "--model", out, "--method", "qlora", "--rank", "4", "--data", data, "--steps",
                            "2", "--batch", "2", "--seq", "32", "--threads", "1", "--out", dir + "/a.gguf"});
  ASSERT_EQ(ft.code, 0) << ft.err;
  RunResult ev = run_qtune({"eval", "--model", out, "--data", data, "--seq", "32", "--threads", "1"});
  ASSERT_EQ(ev.code, 0) << ev.err;
}

TEST(Init, BadInputLeavesNothing) {
  QT_REQUIRE_STORIES();
  const std::string dir = scratch_dir(), out = dir + "/r.gguf";
  auto init = [&](const std::string& cfg) {
    return run_qtune({"init", "--config", cfg, "--tokenizer", tok512(), "--out", out});
  };
  EXPECT_TRUE(IsBadInput(init("dim=32,hidden=64,layers=2,heads=4,seq=64,depth=3"), "--config: unknown key 'depth'"));
  EXPECT_TRUE(IsBadInput(init("dim=30,hidden=64,layers=2,heads=4,seq=64"), "--config: dim 30 is not a multiple"));
  EXPECT_TRUE(IsBadInput(init("dim=32,hidden=64,heads=4,seq=64"), "--config: missing key 'layers'"));
  EXPECT_TRUE(IsBadInput(run_qtune({"init", "--config", kTiny, "--tokenizer", dir + "/none", "--out", out}),
                         "/none"));
  EXPECT_TRUE(files_in(dir).empty());
}

// A write that fails part way (here the file size limit: the writes get EFBIG) is one error
// line, and neither the output nor a temp file is left.
TEST(Init, FailedWriteLeavesNoPartialFile) {
  QT_REQUIRE_STORIES();
  const std::string dir = scratch_dir(), out = dir + "/r.gguf";
  // 64 KiB limit; the model is ~130 KiB. SIGXFSZ ignored so the write fails instead of killing.
  const std::string err_file = dir + ".err";  // beside dir, which must stay empty
  const std::string cmd = "ulimit -f 64; trap '' XFSZ; exec '" + std::string(QTUNE_BINARY) + "' init --quiet --config " +
                          kTiny + " --tokenizer '" + tok512() + "' --out '" + out + "' 2>'" + err_file + "'";
  const int st = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 2);
  const std::string err = read_file(err_file);
  EXPECT_NE(err.find("error: " + out + ": write failed"), std::string::npos) << err;
  EXPECT_TRUE(files_in(dir).empty());
}
