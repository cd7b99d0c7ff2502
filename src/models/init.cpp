#include "models/init.h"

#include <cmath>
#include <map>
#include <sstream>

namespace qtune {

LlamaConfig parse_config_spec(const std::string& spec, const std::string& flag) {
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
    QT_CHECK(eq != std::string::npos, "{}: '{}' is not key=value (keys: dim, hidden, layers, heads, kv_heads, seq)", flag, item);
    std::string k = item.substr(0, eq), v = item.substr(eq + 1);
    auto it = keys.find(k);
    QT_CHECK(it != keys.end(), "{}: unknown key '{}' (keys: dim, hidden, layers, heads, kv_heads, seq)", flag, k);
    char* end = nullptr;
    long x = std::strtol(v.c_str(), &end, 10);
    QT_CHECK(!v.empty() && *end == 0 && x > 0 && x <= (1 << 20), "{}: {}={} is not a positive integer", flag, k, v);
    *it->second = static_cast<int>(x);
    seen[k] = true;
  }
  if (!seen["kv_heads"]) c.n_kv_heads = c.n_heads;
  for (const char* k : {"dim", "hidden", "layers", "heads", "seq"})
    QT_CHECK(seen[k], "{}: missing key '{}' (e.g. dim=128,hidden=344,layers=4,heads=4,seq=256)", flag, k);
  QT_CHECK(c.dim % c.n_heads == 0, "{}: dim {} is not a multiple of heads {}", flag, c.dim, c.n_heads);
  QT_CHECK(c.n_heads % c.n_kv_heads == 0, "{}: heads {} is not a multiple of kv_heads {}", flag, c.n_heads,
           c.n_kv_heads);
  QT_CHECK(c.head_dim() % 2 == 0, "{}: head dim {} must be even for RoPE", flag, c.head_dim());
  c.tied_classifier = true;
  return c;
}

RandomInit::RandomInit(const LlamaConfig& cfg, uint64_t seed) : rng_(seed) {
  QT_CHECK(cfg.vocab_size > 0, "random_model: vocab size must be positive");
  const int64_t C = cfg.dim, H = cfg.hidden_dim, KV = cfg.kv_dim(), Q = int64_t(cfg.n_heads) * cfg.head_dim();
  const float std_w = 0.02f, std_resid = 0.02f / std::sqrt(2.0f * cfg.n_layers);
  auto add = [&](std::string name, Shape shape, float sd) {
    order_.push_back({std::move(name), std::move(shape)});
    std_.push_back(sd);
  };
  add("token_embd.weight", {cfg.vocab_size, C}, std_w);
  for (int l = 0; l < cfg.n_layers; ++l) {
    std::string b = fmt::format("blk.{}.", l);
    add(b + "attn_norm.weight", {C}, 0);
    add(b + "attn_q.weight", {Q, C}, std_w);
    add(b + "attn_k.weight", {KV, C}, std_w);
    add(b + "attn_v.weight", {KV, C}, std_w);
    add(b + "attn_output.weight", {C, Q}, std_resid);
    add(b + "ffn_norm.weight", {C}, 0);
    add(b + "ffn_gate.weight", {H, C}, std_w);
    add(b + "ffn_up.weight", {H, C}, std_w);
    add(b + "ffn_down.weight", {C, H}, std_resid);
  }
  add("output_norm.weight", {C}, 0);
}

void RandomInit::fill(size_t i, float* dst, int64_t n) {
  // One stream of draws: a tensor's values depend on every draw before them, so out of order
  // would silently give another model.
  QT_ASSERT(i == cur_ && i < order_.size() && n <= numel(order_[i].shape) - done_);
  const float sd = std_[i];
  for (int64_t k = 0; k < n; ++k) dst[k] = sd == 0 ? 1.0f : static_cast<float>(rng_.normal() * sd);
  done_ += n;
  if (done_ == numel(order_[i].shape)) ++cur_, done_ = 0;
}

ModelFile random_model(const LlamaConfig& cfg, uint64_t seed) {
  RandomInit init(cfg, seed);
  ModelFile m;
  m.config = cfg;
  m.path = "(random init)";
  m.format = "random";
  for (size_t i = 0; i < init.tensors().size(); ++i) {
    Tensor t(init.tensors()[i].shape);
    init.fill(i, t.ptr(), t.numel());
    m.tensors[init.tensors()[i].name] = std::move(t);
  }
  validate_model(m);
  return m;
}

}  // namespace qtune
