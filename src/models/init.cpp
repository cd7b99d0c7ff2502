#include "models/init.h"

#include <cmath>
#include <map>
#include <sstream>

#include "core/rng.h"

namespace qtune {

LlamaConfig parse_config_spec(const std::string& spec) {
  std::map<std::string, int*> keys;
  LlamaConfig c;
  keys["dim"] = &c.dim;
  keys["hidden"] = &c.hidden_dim;
  keys["layers"] = &c.n_layers;
  keys["heads"] = &c.n_heads;
  keys["kv_heads"] = &c.n_kv_heads;
  keys["seq"] = &c.seq_len;
  std::map<std::string, bool> seen;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    auto eq = item.find('=');
    QT_CHECK(eq != std::string::npos, "--init-config: '{}' is not key=value (keys: dim, hidden, layers, heads, kv_heads, seq)", item);
    std::string k = item.substr(0, eq), v = item.substr(eq + 1);
    auto it = keys.find(k);
    QT_CHECK(it != keys.end(), "--init-config: unknown key '{}' (keys: dim, hidden, layers, heads, kv_heads, seq)", k);
    char* end = nullptr;
    long x = std::strtol(v.c_str(), &end, 10);
    QT_CHECK(!v.empty() && *end == 0 && x > 0 && x <= (1 << 20), "--init-config: {}={} is not a positive integer", k, v);
    *it->second = static_cast<int>(x);
    seen[k] = true;
  }
  if (!seen["kv_heads"]) c.n_kv_heads = c.n_heads;
  for (const char* k : {"dim", "hidden", "layers", "heads", "seq"})
    QT_CHECK(seen[k], "--init-config: missing key '{}' (e.g. dim=128,hidden=344,layers=4,heads=4,seq=256)", k);
  QT_CHECK(c.dim % c.n_heads == 0, "--init-config: dim {} is not a multiple of heads {}", c.dim, c.n_heads);
  QT_CHECK(c.n_heads % c.n_kv_heads == 0, "--init-config: heads {} is not a multiple of kv_heads {}", c.n_heads,
           c.n_kv_heads);
  QT_CHECK(c.head_dim() % 2 == 0, "--init-config: head dim {} must be even for RoPE", c.head_dim());
  c.tied_classifier = true;
  return c;
}

ModelFile random_model(const LlamaConfig& cfg, uint64_t seed) {
  QT_CHECK(cfg.vocab_size > 0, "random_model: vocab size must be positive");
  ModelFile m;
  m.config = cfg;
  m.path = "(random init)";
  m.format = "random";
  Rng rng(seed);
  const int C = cfg.dim, H = cfg.hidden_dim, KV = cfg.kv_dim(), Q = cfg.n_heads * cfg.head_dim();
  const float std_w = 0.02f, std_resid = 0.02f / std::sqrt(2.0f * cfg.n_layers);
  auto normal = [&](const std::string& name, Shape shape, float sd) {
    Tensor t(std::move(shape));
    for (auto& v : t.data) v = static_cast<float>(rng.normal() * sd);
    m.tensors[name] = std::move(t);
  };
  auto ones = [&](const std::string& name, int n) {
    Tensor t(Shape{n});
    for (auto& v : t.data) v = 1.0f;
    m.tensors[name] = std::move(t);
  };
  normal("token_embd.weight", {cfg.vocab_size, C}, std_w);
  for (int l = 0; l < cfg.n_layers; ++l) {
    std::string b = fmt::format("blk.{}.", l);
    ones(b + "attn_norm.weight", C);
    normal(b + "attn_q.weight", {Q, C}, std_w);
    normal(b + "attn_k.weight", {KV, C}, std_w);
    normal(b + "attn_v.weight", {KV, C}, std_w);
    normal(b + "attn_output.weight", {C, Q}, std_resid);
    ones(b + "ffn_norm.weight", C);
    normal(b + "ffn_gate.weight", {H, C}, std_w);
    normal(b + "ffn_up.weight", {H, C}, std_w);
    normal(b + "ffn_down.weight", {C, H}, std_resid);
  }
  ones("output_norm.weight", C);
  validate_model(m);
  return m;
}

}  // namespace qtune
