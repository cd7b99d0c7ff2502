// `qtune quantize --like ADAPTER` writes the exact base a qlora adapter was trained on (issue 15,
// acceptance 4), refuses adapters it cannot reproduce, and export-lora / info name that base.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "adapters/linear.h"
#include "cli_util.h"
#include "core/rng.h"
#include "io/adapter_file.h"
#include "io/gguf.h"
#include "io/gguf_rules.h"
#include "io/model_file.h"
#include "io/projections.h"

using namespace qtune::test;

namespace {

// A qlora adapter trained for 3 steps on stories260K with the given base-quantizer flags.
std::string train_qlora(const Corpus& c, const std::string& name, const std::vector<std::string>& quant_flags) {
  const std::string ad = c.dir + "/" + name;
  auto args = finetune(c, "qlora", ad, 3);
  args.insert(args.end(), quant_flags.begin(), quant_flags.end());
  const RunResult r = run_qtune(args);
  EXPECT_EQ(r.code, 0) << r.err;
  return ad;
}

// Every projection of `like` must dequantize bit for bit to the frozen base the qlora slot builds
// from the float model with the adapter's recorded options (the training's own quantizer, through
// the method factory); everything else must be the float model's tensor, unchanged.
void expect_exact_base(const std::string& like_path, const std::string& adapter) {
  const qtune::ModelFile like = qtune::load_model(like_path);
  const qtune::ModelFile fl = qtune::load_model(stories_bin());
  const qtune::AdapterFile af = qtune::read_adapter(adapter);
  const qtune::MethodOptions opts = qtune::options_from_settings(af.run, adapter);
  ASSERT_EQ(opts.method, "qlora");
  ASSERT_EQ(like.quantized.size(), size_t(fl.config.n_layers) * qtune::kNumProjections);
  qtune::Rng rng(1);
  for (int l = 0; l < fl.config.n_layers; ++l)
    for (int i = 0; i < qtune::kNumProjections; ++i) {
      const std::string stem = qtune::projection_stem(l, i), name = stem + ".weight";
      ASSERT_TRUE(like.quantized.count(name)) << name << " is not integer in " << like_path;
      const qtune::Tensor& w = fl.tensors.at(name);
      auto slot = qtune::make_linear<float>(opts, stem, w, /*targeted=*/true, rng);
      const qtune::Tensor trained = slot->base_weight();
      const qtune::Tensor written = qtune::weight_as_float(like, name);
      ASSERT_EQ(written.shape, trained.shape) << name;
      EXPECT_EQ(0, std::memcmp(written.ptr(), trained.ptr(), trained.numel() * sizeof(float)))
          << name << " does not dequantize to the training's base";
      EXPECT_NE(0, std::memcmp(written.ptr(), w.ptr(), w.numel() * sizeof(float))) << name << " is not quantized";
    }
  for (const auto& [name, t] : fl.tensors) {
    if (like.quantized.count(name)) continue;
    ASSERT_TRUE(like.tensors.count(name)) << name;
    EXPECT_EQ(0, std::memcmp(like.tensors.at(name).ptr(), t.ptr(), t.numel() * sizeof(float))) << name;
  }
}

}  // namespace

TEST(CliQuantizeLike, WritesTheExactQloraTrainingBase) {
  QT_REQUIRE_STORIES();
  const Corpus c = corpus();
  // groups of 32, asymmetric: Q4_1 where rows are a multiple of 32, the exact I8 layout for
  // ffn_down (172-wide rows); 8-bit symmetric per row: Q8_0 and I8
  const std::vector<std::vector<std::string>> configs = {{"--bits", "4", "--group", "32"},
                                                         {"--bits", "8", "--symmetric"}};
  for (size_t k = 0; k < configs.size(); ++k) {
    SCOPED_TRACE(k);
    const std::string ad = train_qlora(c, "ql" + std::to_string(k) + ".gguf", configs[k]);
    const std::string like = c.dir + "/like" + std::to_string(k) + ".gguf";
    const RunResult q = run_qtune({"quantize", "-m", stories_bin(), "-t", tok512(), "--like", ad, "--out", like});
    ASSERT_EQ(q.code, 0) << q.err;
    EXPECT_NE(q.out.find("bit for bit"), std::string::npos) << q.out;
    expect_exact_base(like, ad);
    const auto types = info_json(like)["params_by_type"];
    EXPECT_GT(types.value(k == 0 ? "Q4_1" : "Q8_0", 0), 0) << types.dump();
    // a checkpoint of the same run records the same base: same file
    const std::string like_ckpt = c.dir + "/like_ckpt" + std::to_string(k) + ".gguf";
    ASSERT_EQ(run_qtune({"quantize", "-m", stories_bin(), "-t", tok512(), "--like", ad + ".ckpt.gguf", "--out",
                         like_ckpt}).code, 0);
    EXPECT_EQ(read_file(like), read_file(like_ckpt));
  }
}

// The adapter merged into the --like base evaluates as merged into the float model it was trained
// on (merge re-quantizes a qlora base: the --like base re-quantizes to itself), and not as the
// float base with a float LoRA would.
TEST(CliQuantizeLike, AdapterOnTheLikeBaseEvaluatesAsTrained) {
  QT_REQUIRE_STORIES();
  const Corpus c = corpus();
  const std::string ad = train_qlora(c, "ql.gguf", {"--bits", "4", "--group", "32"});
  const std::string like = c.dir + "/like.gguf";
  ASSERT_EQ(run_qtune({"quantize", "-m", stories_bin(), "--like", ad, "--out", like}).code, 0);
  double ppl[2];
  int i = 0;
  for (const std::string& base : {stories_bin(), like}) {
    const std::string merged = c.dir + "/m" + std::to_string(i) + ".gguf";
    const RunResult m = run_qtune({"merge", "-m", base, "-t", tok512(), "--adapter", ad, "--out", merged});
    ASSERT_EQ(m.code, 0) << m.err;
    ppl[i] = eval_ppl(merged, c.val, merged + ".json");
    ++i;
  }
  EXPECT_NEAR(ppl[1], ppl[0], 1e-5 * ppl[0]);
  const double trained = read_json(ad + ".json")["val_perplexity"];
  EXPECT_NEAR(ppl[1], trained, 1e-4) << "the in-process validation of the trained adapter";
  // the quantized base matters: the like base alone is not the float model
  EXPECT_NE(eval_ppl(like, c.val, c.dir + "/like.json"), eval_ppl(stories_bin(), c.val, c.dir + "/float.json"));
}

// A model whose rows are all multiples of 32 gets block types only: llama.cpp loads the --like base
// (with the vocabulary embedded), reading the scales as fp16, and the output says so.
TEST(CliQuantizeLike, BlockTypedBaseLoadsInLlamaCpp) {
  QT_REQUIRE_STORIES();
  const Corpus c = corpus();
  const std::string model = c.dir + "/m.gguf", ad = c.dir + "/ql.gguf", like = c.dir + "/like.gguf";
  ASSERT_EQ(run_qtune({"init", "--config", "dim=64,hidden=128,layers=2,heads=4,kv_heads=2,seq=64", "--tokenizer",
                       tok512(), "--seed", "5", "--out", model}).code, 0);
  const RunResult f = run_qtune({"finetune", "-m", model, "--data", c.train, "--method", "qlora", "--bits", "4",
                                 "--group", "32", "--steps", "1", "--batch", "2", "--seq", "32", "--threads", "1",
                                 "--rank", "2", "--out", ad});
  ASSERT_EQ(f.code, 0) << f.err;
  const RunResult q = run_qtune({"quantize", "-m", model, "--like", ad, "--out", like});
  ASSERT_EQ(q.code, 0) << q.err;
  EXPECT_NE(q.out.find("llama.cpp: loadable"), std::string::npos) << q.out;
  EXPECT_NE(q.out.find("llama.cpp reads its block scales rounded to fp16"), std::string::npos) << q.out;
  const qtune::GgufFile g(like);
  EXPECT_EQ(qtune::check_llamacpp_model_rules(g), std::vector<std::string>{});
  EXPECT_EQ(qtune::llamacpp_unsupported(g), std::vector<std::string>{});
  EXPECT_EQ(info_json(like)["params_by_type"].value("Q4_1", 0), 2 * (64 * 64 * 2 + 64 * 32 * 2 + 128 * 64 * 3));
  // the exported LoRA passes llama.cpp's adapter rules against that base
  const RunResult e = run_qtune({"export-lora", "--adapter", ad, "--model", like, "--out", c.dir + "/e.gguf"});
  EXPECT_EQ(e.code, 0) << e.err;
  EXPECT_NE(e.out.find("--like " + ad), std::string::npos) << e.out;
}

TEST(CliQuantizeLike, RefusesWhatItCannotReproduce) {
  QT_REQUIRE_STORIES();
  const Corpus c = corpus();
  const std::string dir = c.dir;
  const std::string ql = train_qlora(c, "ql.gguf", {});
  // a float-base adapter
  const std::string lora = dir + "/lora.gguf";
  ASSERT_EQ(run_qtune(finetune(c, "lora", lora, 1)).code, 0);
  EXPECT_TRUE(IsBadInput(run_qtune({"quantize", "-m", stories_bin(), "--like", lora, "--out", dir + "/x.gguf"}),
                         "float base"));
  // an adapter trained on another model (the v1 file holds the same weights, other bytes)
  EXPECT_TRUE(IsBadInput(run_qtune({"quantize", "-m", stories_v1_bin(), "--like", ql, "--out", dir + "/x.gguf"}),
                         "another base model"));
  // --like decides the quantizer: a type flag with it is an error
  for (const std::vector<std::string>& flag : {std::vector<std::string>{"--bits", "8"}, {"--quantizer", "qtune"},
                                               {"--group", "32"}, {"--symmetric"}})
    EXPECT_TRUE(IsBadInput(
        run_qtune([&] {
          std::vector<std::string> a = {"quantize", "-m", stories_bin(), "--like", ql, "--out", dir + "/x.gguf"};
          a.insert(a.end(), flag.begin(), flag.end());
          return a;
        }()),
        flag[0] + " does not go with --like"));
  // an adapter that records no model (made before qtune recorded it): checked by its shapes, with a note
  qtune::AdapterFile old = qtune::read_adapter(ql);
  std::erase_if(old.run, [](const auto& kv) { return kv.first == "model-file" || kv.first == "model-fingerprint"; });
  const std::string unrecorded = dir + "/old.gguf";
  qtune::write_lora_adapter(unrecorded, old.adapters, old.state, old.run, old.lora_alpha);
  const RunResult o = run_qtune({"quantize", "-m", stories_v1_bin(), "--like", unrecorded, "--out", dir + "/o.gguf"});
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.err.find("does not record the model"), std::string::npos) << o.err;
  const std::string other = dir + "/other.gguf";
  ASSERT_EQ(run_qtune({"init", "--config", "dim=32,hidden=64,layers=2,heads=4,kv_heads=2,seq=64", "--tokenizer",
                       tok512(), "--out", other}).code, 0);
  EXPECT_TRUE(IsBadInput(run_qtune({"quantize", "-m", other, "--like", unrecorded, "--out", dir + "/x.gguf"}),
                         "another base model?"));
  // not an adapter at all
  EXPECT_TRUE(IsBadInput(run_qtune({"quantize", "-m", stories_bin(), "--like", stories_bin(), "--out", dir + "/x.gguf"}),
                         stories_bin()));
}

TEST(CliExportLora, NamesTheBaseTheAdapterNeeds) {
  QT_REQUIRE_STORIES();
  const Corpus c = corpus();
  const std::string ql = train_qlora(c, "ql.gguf", {"--bits", "4", "--group", "32"});
  const RunResult e = run_qtune({"export-lora", "--adapter", ql, "--out", c.dir + "/e.gguf"});
  ASSERT_EQ(e.code, 0) << e.err;
  const qtune::AdapterFile af = qtune::read_adapter(ql);
  const std::string* recorded = qtune::find_setting(af.run, "model-fingerprint");
  ASSERT_TRUE(recorded) << "the adapter does not record its base";
  for (const std::string& want : {std::string("stories260K.bin"), *recorded, std::string("4-bit asymmetric, groups of 32"),
                                  "qtune quantize --model stories260K.bin --out BASE.gguf --like " + ql})
    EXPECT_NE(e.out.find(want), std::string::npos) << want << " not in: " << e.out;
  // the exported LoRA keeps the record: --like reads it as well
  EXPECT_EQ(run_qtune({"quantize", "-m", stories_bin(), "--like", c.dir + "/e.gguf", "--out", c.dir + "/b.gguf"}).code,
            0);
  // info says the same; a float-base adapter applies to the float model
  const RunResult i = run_qtune({"info", ql});
  ASSERT_EQ(i.code, 0) << i.err;
  EXPECT_NE(i.out.find("--like " + ql), std::string::npos) << i.out;
  const std::string lora = c.dir + "/lora.gguf";
  ASSERT_EQ(run_qtune(finetune(c, "lora", lora, 1)).code, 0);
  const RunResult el = run_qtune({"export-lora", "--adapter", lora, "--out", c.dir + "/el.gguf"});
  ASSERT_EQ(el.code, 0) << el.err;
  EXPECT_NE(el.out.find("trained on the float base stories260K.bin"), std::string::npos) << el.out;
  EXPECT_EQ(el.out.find("--like"), std::string::npos) << el.out;
}
