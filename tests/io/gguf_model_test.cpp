// GGUF llama models: ModelFile → GGUF → ModelFile is exact for F32 and within each format's
// error otherwise (block-typed projections re-load as integer weights); non-multiple-of-32 rows
// fall back to F32 and are reported; the real
// stories260K round-trips bit for bit; an embedded vocabulary makes the file a tokenizer too.
#include <cstring>
#include <random>

#include "io/gguf.h"
#include "io/gguf_model.h"
#include "io/gguf_tokenizer.h"
#include "test_util.h"

namespace qtune {
namespace {

// A random model with the shapes of io/model_file.h.
ModelFile random_model(int hidden, bool tied) {
  ModelFile m;
  LlamaConfig& c = m.config;
  c.dim = 64, c.hidden_dim = hidden, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.vocab_size = 40;
  c.seq_len = 32, c.norm_eps = 1e-6f, c.rope_theta = 500000.0f, c.tied_classifier = tied;
  m.path = "random";
  std::mt19937 g(11);
  std::normal_distribution<float> nd(0.0f, 0.1f);
  auto add = [&](const std::string& name, Shape s) {
    Tensor t(std::move(s));
    for (auto& v : t.data) v = nd(g);
    m.tensors.emplace(name, std::move(t));
  };
  const int64_t D = c.dim, H = hidden, V = c.vocab_size, KV = c.kv_dim();
  add("token_embd.weight", {V, D});
  add("output_norm.weight", {D});
  if (!tied) add("output.weight", {V, D});
  for (int l = 0; l < c.n_layers; l++) {
    auto n = [l](const char* w) { return fmt::format("blk.{}.{}.weight", l, w); };
    add(n("attn_norm"), {D});
    add(n("attn_q"), {D, D});
    add(n("attn_k"), {KV, D});
    add(n("attn_v"), {KV, D});
    add(n("attn_output"), {D, D});
    add(n("ffn_norm"), {D});
    add(n("ffn_gate"), {H, D});
    add(n("ffn_down"), {D, H});
    add(n("ffn_up"), {H, D});
  }
  return m;
}

void expect_same_config(const LlamaConfig& a, const LlamaConfig& b) {
  EXPECT_EQ(a.dim, b.dim);
  EXPECT_EQ(a.hidden_dim, b.hidden_dim);
  EXPECT_EQ(a.n_layers, b.n_layers);
  EXPECT_EQ(a.n_heads, b.n_heads);
  EXPECT_EQ(a.n_kv_heads, b.n_kv_heads);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.seq_len, b.seq_len);
  EXPECT_EQ(a.norm_eps, b.norm_eps);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.tied_classifier, b.tied_classifier);
}

TEST(GgufModel, F32RoundTripIsExact) {
  ModelFile m = random_model(96, false);
  std::string path = test::scratch_dir() + "/m.gguf";
  GgufSaveReport r = save_model_gguf(m, path, {});
  EXPECT_TRUE(r.f32_fallback.empty());
  ModelFile b = load_gguf_model(path);
  EXPECT_EQ(b.format, "gguf");
  expect_same_config(b.config, m.config);
  ASSERT_EQ(b.tensors.size(), m.tensors.size());
  for (const auto& [name, t] : m.tensors) {
    const Tensor& u = b.tensors.at(name);
    ASSERT_EQ(u.shape, t.shape) << name;
    EXPECT_EQ(std::memcmp(u.ptr(), t.ptr(), size_t(t.numel()) * 4), 0) << name;
  }
  EXPECT_TRUE(b.stored_types.empty());
  GgufFile f(path);
  EXPECT_EQ(f.get_str("general.architecture"), "llama");
  EXPECT_EQ(f.get_u32("general.file_type"), 0u);
  EXPECT_EQ(f.find_tensor("blk.1.attn_k.weight")->ne, (std::vector<int64_t>{64, 32}));  // torch [32, 64]
}

TEST(GgufModel, QuantizedWithinFormatErrorAndFallback) {
  ModelFile m = random_model(80, true);  // ffn_down rows have 80 elements: not a multiple of 32
  struct Case {
    GgmlType t;
    uint32_t ftype;
    double max_rel;
  };
  for (Case c : {Case{GgmlType::F16, 1, 1e-3}, Case{GgmlType::Q8_0, 7, 1e-2}, Case{GgmlType::Q4_0, 2, 0.15},
                 Case{GgmlType::Q4_1, 3, 0.15}}) {
    std::string path = test::scratch_dir() + "/q.gguf";
    GgufSaveOptions o;
    o.weight_type = c.t;
    GgufSaveReport r = save_model_gguf(m, path, o);
    const bool blocked = c.t != GgmlType::F16;  // F16 has no blocks, so any row length fits
    std::vector<std::string> want;
    if (blocked) want = {"blk.0.ffn_down.weight", "blk.1.ffn_down.weight"};
    EXPECT_EQ(r.f32_fallback, want);
    ModelFile b = load_gguf_model(path);
    const char* tn = ggml_type_info(c.t).name;
    EXPECT_EQ(GgufFile(path).get_u32("general.file_type"), c.ftype);
    for (const auto& [name, t] : m.tensors) {
      // Block-typed projections load as integer weights (gguf_int.h), everything else as float.
      const bool as_int = blocked && is_projection_name(name) && name.find("ffn_down") == std::string::npos;
      EXPECT_EQ(b.quantized.count(name), as_int ? 1u : 0u) << tn << " " << name;
      EXPECT_EQ(b.tensors.count(name), as_int ? 0u : 1u) << tn << " " << name;
      const Tensor u = weight_as_float(b, name);
      ASSERT_EQ(u.shape, t.shape);
      double e = test::rel_err(u.ptr(), t.ptr(), size_t(t.numel()));
      bool stays_f32 = t.shape.size() == 1 || (blocked && name.find("ffn_down") != std::string::npos);
      if (stays_f32) {
        EXPECT_EQ(e, 0.0) << name;
        EXPECT_EQ(b.stored_types.count(name), 0u) << name;
      } else {
        EXPECT_GT(e, 0.0) << tn << " " << name;
        EXPECT_LT(e, c.max_rel) << tn << " " << name;
        EXPECT_EQ(b.stored_types.at(name), tn);
      }
    }
  }
}

TEST(GgufModel, EmbeddedVocabularyIsATokenizer) {
  ModelFile m = random_model(64, true);
  GgufVocab v;
  for (int i = 0; i < 40; i++) v.tokens.push_back(i == 0 ? "<unk>" : i == 1 ? "<s>" : i == 2 ? "</s>" : fmt::format("▁t{}", i));
  v.tokens[10] = "▁a";
  v.tokens[11] = "b";
  v.tokens[12] = "▁ab";
  v.scores.assign(40, 0.0f);
  v.scores[12] = 5.0f;
  v.types = infer_token_types(v.tokens);
  EXPECT_EQ(v.types[0], 2);
  EXPECT_EQ(v.types[1], 3);
  EXPECT_EQ(v.types[10], 1);
  GgufSaveOptions o;
  o.vocab = &v;
  o.name = "tiny";
  std::string path = test::scratch_dir() + "/v.gguf";
  save_model_gguf(m, path, o);
  auto tok = load_gguf_tokenizer(path);
  EXPECT_EQ(tok->vocab_size(), 40);
  EXPECT_EQ(tok->encode("ab a", true, false), (std::vector<int>{1, 12, 10}));
  EXPECT_EQ(GgufFile(path).get_str("general.name"), "tiny");
  v.tokens.pop_back();  // 39 tokens for a 40-token model
  EXPECT_THROW(save_model_gguf(m, path, o), Error);
}

TEST(GgufModel, Stories260KRoundTripsBitExact) {
  std::string p = test::shared_dir() + "/models/stories260K/stories260K.bin";
  QT_REQUIRE_SHARED(p);
  ModelFile m = load_model(p);
  std::string path = test::scratch_dir() + "/s.gguf";
  GgufSaveReport r = save_model_gguf(m, path, {});
  EXPECT_TRUE(r.f32_fallback.empty());
  ModelFile b = load_gguf_model(path);
  expect_same_config(b.config, m.config);
  ASSERT_EQ(b.tensors.size(), m.tensors.size());
  for (const auto& [name, t] : m.tensors)
    EXPECT_EQ(std::memcmp(b.tensors.at(name).ptr(), t.ptr(), size_t(t.numel()) * 4), 0) << name;
  // Q8_0: hidden 172 is not a multiple of 32, so ffn_down stays F32 in every layer.
  GgufSaveOptions o;
  o.weight_type = GgmlType::Q8_0;
  r = save_model_gguf(m, path, o);
  EXPECT_EQ(r.f32_fallback.size(), 5u);
}

}  // namespace
}  // namespace qtune
