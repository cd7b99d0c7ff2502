// models/llama_generate.cpp — the prompt's batched prefill, single-token decoding with a KV
// cache, and sampling.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <numeric>
#include <utility>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/gemm.h"
#include "kernels/qblocks_packed.h"
#include "kernels/qdot_blocks.h"
#include "models/decode_attention.h"
#include "models/llama.h"
#include "models/llama_impl.h"
#include "nn/ops.h"

namespace qtune {

namespace {

// The decoding state (shapes in llama_impl.h), carved once per model.
void alloc_cache(const LlamaConfig& c, LlamaCache& k) {
  const int64_t L = c.n_layers, S = c.seq_len, C = c.dim, H = c.hidden_dim, V = c.vocab_size;
  const int64_t Q = int64_t(c.n_heads) * c.head_dim(), KV = c.kv_dim();
  carve(k.mem, {{&k.key, L * S * KV},    // [L, nkv, S, hd]
                {&k.value, L * S * KV},  // [L, nkv, S, hd]
                {&k.k_new, KV},          // [KV]
                {&k.v_new, KV},          // [KV]
                {&k.x, C},               // [C]
                {&k.xn, C},              // [C]
                {&k.q, Q},               // [Q]
                {&k.att, c.n_heads * S}, // [nh, S]
                {&k.attn_y, Q},          // [Q]
                {&k.tmp, C},             // [C]
                {&k.h1, H},              // [H]
                {&k.h3, H},              // [H]
                {&k.logits, V}});        // [V]
}

// logits [V] = xn [C] · Wᵀ with decoding's classifier: its packed or loaded blocks
// (Impl::output_packed / output_blocks) when present, else the float W [V, C].
void decode_classifier(const LlamaConfig& c, const std::optional<kernels::PackedBlocks>& packed,
                       const std::optional<QuantMatrix>& blocks, const float* W, const float* xn, float* logits) {
  if (packed)
    kernels::qgemv_packed(xn, *packed, logits, 1, false);
  else if (blocks)
    kernels::qgemv_blocks(xn, *blocks, logits, 1, false);
  else
    kernels::matmul_nt(xn, W, logits, 1, c.dim, c.vocab_size, false);
}

// y[j] = x·W_jᵀ for one token and slots that share the input x. When every slot decodes with
// packed blocks (packed_weight), one qgemv_packed_fused runs them all: x quantized
// once, one fork/join instead of one per slot (at 2 threads the joins' spin-waits were ~20 % of
// decoding). The same outputs as slot by slot, which the other slots still do.
void forward_shared(const float* x, std::initializer_list<std::pair<Linear<float>*, float*>> slots, Context& ctx) {
  const kernels::PackedBlocks* P[kernels::kMaxFused];
  float* y[kernels::kMaxFused];
  int count = 0;
  for (const auto& [slot, out] : slots) {
    const kernels::PackedBlocks* p = slot->packed_weight();
    if (!p || count == kernels::kMaxFused || p->cols != slot->in()) break;
    P[count] = p, y[count++] = out;
  }
  if (count == int(slots.size())) return kernels::qgemv_packed_fused(x, P, y, count, 1);
  for (const auto& [slot, out] : slots) slot->forward(x, out, 1, ctx);
}

}  // namespace

void Llama::reset_cache() {
  if (impl_->cache.mem.empty()) alloc_cache(cfg_, impl_->cache);
  impl_->cache.mem.zero();
}

// The same block as Impl::forward_layer, for one token (rows = 1), keys/values appended to
// the cache at `pos`.
const float* Llama::step(int token, int pos) {
  Impl& m = *impl_;
  LlamaCache& kc = m.cache;
  const LlamaConfig& c = cfg_;
  QT_CHECK(token >= 0 && token < c.vocab_size, "step: token id {} is outside the vocabulary (0..{})", token,
           c.vocab_size - 1);
  QT_CHECK(pos >= 0 && pos < c.seq_len, "step: position {} is outside 0..{}", pos, c.seq_len - 1);
  if (kc.mem.empty()) reset_cache();
  const int64_t C = c.dim, KV = c.kv_dim(), H = c.hidden_dim, S = c.seq_len;
  Context ctx;

  nn::embedding_forward(&token, m.p.token_embd, kc.x, 1, C);
  for (int l = 0; l < c.n_layers; ++l) {
    LlamaLayer& ly = m.layers[l];
    float* key = kc.key + l * S * KV;      // [nkv, S, hd]
    float* value = kc.value + l * S * KV;
    nn::rmsnorm_forward(kc.x, m.p.attn_norm + l * C, kc.xn, &kc.rstd, 1, C, c.norm_eps);
    forward_shared(kc.xn, {{ly.q.get(), kc.q}, {ly.k.get(), kc.k_new}, {ly.v.get(), kc.v_new}}, ctx);
    nn::rope_forward(kc.q, 1, 1, c.n_heads, c.head_dim(), c.rope_theta, pos);
    nn::rope_forward(kc.k_new, 1, 1, c.n_kv_heads, c.head_dim(), c.rope_theta, pos);
    store_kv(c, kc.k_new, KV, 1, pos, key);
    store_kv(c, kc.v_new, KV, 1, pos, value);
    decode_attention(c, kc.q, key, value, kc.att, kc.attn_y, pos);
    ly.o->forward(kc.attn_y, kc.tmp, 1, ctx);
    for (int64_t i = 0; i < C; ++i) kc.x[i] += kc.tmp[i];
    nn::rmsnorm_forward(kc.x, m.p.ffn_norm + l * C, kc.xn, &kc.rstd, 1, C, c.norm_eps);
    forward_shared(kc.xn, {{ly.gate.get(), kc.h1}, {ly.up.get(), kc.h3}}, ctx);
    nn::swiglu_forward(kc.h1, kc.h3, kc.h1, H);  // in place: elementwise
    ly.down->forward(kc.h1, kc.tmp, 1, ctx);
    for (int64_t i = 0; i < C; ++i) kc.x[i] += kc.tmp[i];
  }
  nn::rmsnorm_forward(kc.x, m.p.output_norm, kc.xn, &kc.rstd, 1, C, c.norm_eps);
  decode_classifier(c, m.output_packed, m.output_blocks, m.p.output, kc.xn, kc.logits);
  return kc.logits;
}

// The training forward's blocks (Impl::forward_layer) at B = 1, T = n; each layer's post-RoPE
// keys and its values go to the cache, and only the last row reaches the classifier. The
// activations are released afterwards: decoding needs only the cache.
const float* Llama::prefill(const int* tokens, int n) {
  Impl& m = *impl_;
  LlamaCache& kc = m.cache;
  const LlamaConfig& c = cfg_;
  QT_CHECK(n > 0 && n <= c.seq_len, "prefill: {} tokens do not fit 1..{}", n, c.seq_len);
  for (int i = 0; i < n; ++i)
    QT_CHECK(tokens[i] >= 0 && tokens[i] < c.vocab_size, "prefill: token id {} at position {} is outside the "
             "vocabulary (0..{})", tokens[i], i, c.vocab_size - 1);
  QT_CHECK(!m.save_gse && !m.gse, "prefill: a model in training arithmetic (--save-act/--gemm gse) does not decode");
  if (kc.mem.empty()) reset_cache();
  const int64_t C = c.dim, KV = c.kv_dim(), S = c.seq_len;
  // Block-quantized slots may run decoding's kernel on the prompt (Context::prefill), and the
  // layers share one working set as under --recompute (nothing here goes backward): the prompt's
  // activations were allocated, zeroed and faulted in for all layers, serially, 70 MB at 128
  // tokens of stories110M. The arithmetic is the same either way.
  struct PrefillScope {
    Llama::Impl& m;
    bool recompute;
    explicit PrefillScope(Llama::Impl& i) : m(i), recompute(i.recompute) {
      m.ctx.prefill = true;
      m.recompute = true;
    }
    ~PrefillScope() {  // also on an exception: no one-layer working set outlives the flag
      m.ctx.prefill = false;
      m.recompute = recompute;
      m.act_mem.resize(0);  // decoding needs only the cache
      m.B = m.T = 0;
    }
  };
  const PrefillScope scope(m);
  m.act_mem.resize(0);  // carve anew for the one-layer working set
  m.carve_acts(1, n);
  nn::embedding_forward(tokens, m.p.token_embd, m.a.res, n, C);  // res[0]: [n, C]
  for (int l = 0; l < c.n_layers; ++l) {
    m.forward_layer(l);
    const int64_t i = m.li(l);  // k, v: [n, KV] of the working set → cache [L, nkv, S, hd] positions 0..n−1
    store_kv(c, m.a.k + i * n * KV, KV, n, 0, kc.key + l * S * KV);
    store_kv(c, m.a.v + i * n * KV, KV, n, 0, kc.value + l * S * KV);
  }
  const float* last = m.res_at(c.n_layers) + (n - 1) * C;
  nn::rmsnorm_forward(last, m.p.output_norm, kc.xn, &kc.rstd, 1, C, c.norm_eps);
  decode_classifier(c, m.output_packed, m.output_blocks, m.p.output, kc.xn, kc.logits);
  return kc.logits;
}

namespace {

int argmax(const float* x, int n) { return int(std::max_element(x, x + n) - x); }

// Temperature softmax, then nucleus (top-p) sampling: the smallest set of most likely tokens
// whose mass reaches top_p, renormalised.
int sample(const float* logits, int V, const SamplerOptions& s, Rng& rng, std::vector<float>& p,
           std::vector<int>& idx) {
  p.resize(V);
  float mx = *std::max_element(logits, logits + V);
  double sum = 0;
  for (int i = 0; i < V; ++i) sum += (p[i] = std::exp((logits[i] - mx) / s.temperature));
  for (int i = 0; i < V; ++i) p[i] = float(p[i] / sum);
  idx.resize(V);
  std::iota(idx.begin(), idx.end(), 0);
  int n = V;
  if (s.top_p < 1.0f) {
    std::sort(idx.begin(), idx.end(), [&](int a, int b) { return p[a] > p[b]; });
    double cum = 0;
    for (n = 0; n < V;) {
      cum += p[idx[n++]];
      if (cum >= s.top_p) break;
    }
  }
  double mass = 0;
  for (int i = 0; i < n; ++i) mass += p[idx[i]];
  double r = rng.uniform_double() * mass, acc = 0;
  for (int i = 0; i < n; ++i) {
    acc += p[idx[i]];
    if (r < acc) return idx[i];
  }
  return idx[n - 1];  // rounding: r landed at the very end
}

}  // namespace

std::vector<int> generate(Llama& model, const std::vector<int>& prompt, int max_tokens, const SamplerOptions& s,
                          GenerateStats* stats) {
  using Clock = std::chrono::steady_clock;
  const auto secs = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  const LlamaConfig& c = model.config();
  QT_CHECK(!prompt.empty(), "generate: the prompt is empty (start it with BOS)");
  QT_CHECK(int(prompt.size()) <= c.seq_len, "generate: prompt of {} tokens exceeds seq_len {}", prompt.size(),
           c.seq_len);
  QT_CHECK(s.temperature >= 0.0f, "generate: temperature must be >= 0, got {}", s.temperature);
  QT_CHECK(s.top_p > 0.0f && s.top_p <= 1.0f, "generate: top_p must be in (0, 1], got {}", s.top_p);
  const int kEos = 2;  // llama2.c / Llama SentencePiece convention
  Rng rng(s.seed);
  std::vector<float> p;
  std::vector<int> idx, out;
  model.reset_cache();
  GenerateStats st;
  st.prompt_tokens = int(prompt.size());
  auto t0 = Clock::now();
  const float* logits = model.prefill(prompt.data(), int(prompt.size()));
  st.prompt_seconds = secs(t0, Clock::now());
  int pos = int(prompt.size());
  while (int(out.size()) < max_tokens && pos <= c.seq_len) {
    int next = s.temperature == 0.0f ? argmax(logits, c.vocab_size) : sample(logits, c.vocab_size, s, rng, p, idx);
    out.push_back(next);
    if (next == kEos || pos == c.seq_len || int(out.size()) == max_tokens) break;  // no step nobody reads
    t0 = Clock::now();
    logits = model.step(next, pos++);
    st.decode_seconds += secs(t0, Clock::now());
    ++st.decode_steps;
  }
  st.gen_tokens = int(out.size());
  if (stats) *stats = st;
  return out;
}

}  // namespace qtune
