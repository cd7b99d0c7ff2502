// tests/models/tiny_model.h — a tiny random LLaMA (dim 16, hidden 24, 2 layers, GQA 4/2 heads,
// vocab 11, seq 8) for model-level tests; `tied` chooses the classifier.
#pragma once
#include <string>

#include "core/rng.h"
#include "io/model_file.h"

namespace qtune::test {

inline ModelFile tiny_model(bool tied, uint64_t seed = 7) {
  ModelFile mf;
  LlamaConfig& c = mf.config;
  c.dim = 16, c.hidden_dim = 24, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.vocab_size = 11, c.seq_len = 8;
  c.tied_classifier = tied;
  mf.path = "tiny";
  Rng rng(seed);
  auto add = [&](const std::string& name, Shape s, double scale, double mean = 0) {
    Tensor t(std::move(s));
    for (auto& x : t.data) x = float(mean + scale * rng.normal());
    mf.tensors[name] = std::move(t);
  };
  const int64_t C = c.dim, H = c.hidden_dim, KV = c.kv_dim(), V = c.vocab_size;
  add("token_embd.weight", {V, C}, 1.0);
  add("output_norm.weight", {C}, 0.1, 1.0);
  if (!tied) add("output.weight", {V, C}, 0.3);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    add(b + "attn_norm.weight", {C}, 0.1, 1.0);
    add(b + "ffn_norm.weight", {C}, 0.1, 1.0);
    add(b + "attn_q.weight", {C, C}, 0.3);
    add(b + "attn_k.weight", {KV, C}, 0.3);
    add(b + "attn_v.weight", {KV, C}, 0.3);
    add(b + "attn_output.weight", {C, C}, 0.3);
    add(b + "ffn_gate.weight", {H, C}, 0.3);
    add(b + "ffn_up.weight", {H, C}, 0.3);
    add(b + "ffn_down.weight", {C, H}, 0.3);
  }
  return mf;
}

}  // namespace qtune::test
