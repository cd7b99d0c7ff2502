// tests/io/gguf_int_util.h — small llama models with integer weights, for the GGUF integer tests.
#pragma once
#include <cmath>
#include <cstring>
#include <random>
#include <string>

#include "io/gguf.h"
#include "io/gguf_model.h"
#include "io/gguf_tokenizer.h"
#include "test_util.h"

namespace qtune::test {

// dim 64, `hidden`, 2 layers, 4 heads (2 kv), vocab 40; weights N(0, 0.1), or |N(0, 0.1)| when
// `positive` (so an asymmetric 8-bit grid has zero point 0 and values up to 255).
inline ModelFile int_test_model(int hidden, bool positive = false, uint32_t seed = 3) {
  ModelFile m;
  LlamaConfig& c = m.config;
  c.dim = 64, c.hidden_dim = hidden, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.vocab_size = 40;
  c.seq_len = 32, c.norm_eps = 1e-5f, c.tied_classifier = true;
  m.path = "int-test";
  std::mt19937 g(seed);
  std::normal_distribution<float> nd(0.0f, 0.1f);
  auto add = [&](const std::string& name, Shape s) {
    Tensor t(std::move(s));
    for (auto& v : t.data) v = positive ? std::fabs(nd(g)) : nd(g);
    m.tensors.emplace(name, std::move(t));
  };
  const int64_t D = c.dim, H = hidden, KV = c.kv_dim();
  add("token_embd.weight", {c.vocab_size, D});
  add("output_norm.weight", {D});
  for (int l = 0; l < c.n_layers; l++) {
    auto n = [l](const char* w) { return fmt::format("blk.{}.{}.weight", l, w); };
    add(n("attn_norm"), {D});
    add(n("ffn_norm"), {D});
    add(n("attn_q"), {D, D});
    add(n("attn_k"), {KV, D});
    add(n("attn_v"), {KV, D});
    add(n("attn_output"), {D, D});
    add(n("ffn_gate"), {H, D});
    add(n("ffn_down"), {D, H});
    add(n("ffn_up"), {H, D});
  }
  return m;
}

// A llama-style vocabulary of n tokens (llama.cpp needs one in the file).
inline GgufVocab int_test_vocab(int n) {
  GgufVocab v;
  for (int i = 0; i < n; i++) v.tokens.push_back(i == 0 ? "<unk>" : i == 1 ? "<s>" : i == 2 ? "</s>" : fmt::format("t{}", i));
  v.scores.assign(size_t(n), 0.0f);
  v.types = infer_token_types(v.tokens);
  return v;
}

// Every weight of b equals a's bit for bit (integer weights dequantized as weight_as_float does).
inline void expect_bit_exact(const ModelFile& a, const ModelFile& b) {
  EXPECT_EQ(a.quantized.size(), b.quantized.size());
  EXPECT_EQ(a.tensors.size(), b.tensors.size());
  auto all = [](const ModelFile& m) {
    std::vector<std::string> n;
    for (const auto& [k, v] : m.tensors) n.push_back(k);
    for (const auto& [k, v] : m.quantized) n.push_back(k);
    return n;
  };
  for (const auto& name : all(a)) {
    ASSERT_TRUE(b.tensors.count(name) + b.quantized.count(name) == 1) << name;
    EXPECT_EQ(a.quantized.count(name), b.quantized.count(name)) << name;
    const Tensor x = weight_as_float(a, name), y = weight_as_float(b, name);
    ASSERT_EQ(x.shape, y.shape) << name;
    EXPECT_EQ(std::memcmp(x.ptr(), y.ptr(), size_t(x.numel()) * 4), 0) << name;
  }
}

}  // namespace qtune::test
