// tests/models/tiny_model.h — a tiny random LLaMA (dim 16, hidden 24, 2 layers, GQA 4/2 heads,
// vocab 11, seq 8) for model-level tests; `tied` chooses the classifier.
#pragma once
#include <string>
#include <tuple>

#include "core/rng.h"
#include "io/model_file.h"

namespace qtune::test {

// A random LLaMA of config c: norms N(1, 0.1²), the embedding N(0, embd_scale²), the classifier
// (untied only) N(0, 0.3²), each projection [out, in] N(0, proj_scale(in)²); drawn in file order.
template <class ProjScale>
ModelFile random_llama(const LlamaConfig& c, const std::string& path, uint64_t seed, double embd_scale,
                       ProjScale proj_scale) {
  ModelFile mf;
  mf.config = c;
  mf.path = path;
  Rng rng(seed);
  auto add = [&](const std::string& name, Shape s, double scale, double mean = 0) {
    Tensor t(std::move(s));
    for (auto& x : t.data) x = float(mean + scale * rng.normal());
    mf.tensors[name] = std::move(t);
  };
  const int64_t C = c.dim, H = c.hidden_dim, KV = c.kv_dim(), V = c.vocab_size;
  add("token_embd.weight", {V, C}, embd_scale);
  add("output_norm.weight", {C}, 0.1, 1.0);
  if (!c.tied_classifier) add("output.weight", {V, C}, 0.3);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    add(b + "attn_norm.weight", {C}, 0.1, 1.0);
    add(b + "ffn_norm.weight", {C}, 0.1, 1.0);
    for (auto [n, o, i] : {std::tuple{"attn_q", C, C}, {"attn_k", KV, C}, {"attn_v", KV, C}, {"attn_output", C, C},
                           {"ffn_gate", H, C}, {"ffn_up", H, C}, {"ffn_down", C, H}})
      add(b + n + ".weight", {o, i}, proj_scale(i));
  }
  return mf;
}

inline ModelFile tiny_model(bool tied, uint64_t seed = 7) {
  LlamaConfig c;
  c.dim = 16, c.hidden_dim = 24, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.vocab_size = 11, c.seq_len = 8;
  c.tied_classifier = tied;
  return random_llama(c, "tiny", seed, 1.0, [](int64_t) { return 0.3; });
}

}  // namespace qtune::test
