// models/llama_generate.cpp — the prompt's batched prefill, single-token decoding with a KV
// cache, and sampling.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/gemm.h"
#include "kernels/qblocks_packed.h"
#include "kernels/qdot_blocks.h"
#include "kernels/softmax.h"
#include "models/llama.h"
#include "models/llama_impl.h"
#include "nn/ops.h"

namespace qtune {

namespace {

// The decoding state (shapes in llama_impl.h), carved once per model.
void alloc_cache(const LlamaConfig& c, LlamaCache& k) {
  const int64_t L = c.n_layers, S = c.seq_len, C = c.dim, H = c.hidden_dim, V = c.vocab_size;
  const int64_t Q = int64_t(c.n_heads) * c.head_dim(), KV = c.kv_dim();
  carve(k.mem, {{&k.key, L * S * KV},    // [L, S, KV]
                {&k.value, L * S * KV},  // [L, S, KV]
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

// Σ a[i]·b[i] in eight independent sums (vectorisable without -ffast-math; decoding's attention
// over a long cache spent most of its time in one serial float chain).
inline float dot8(const float* a, const float* b, int n) {
  float acc[8] = {};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  for (; i < n; ++i) acc[0] += a[i] * b[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

// o[i] = Σ_{s<np} (a[s]·inv)·v[s·ld + i], i < n, s in order: the weighted sum of values. It ran
// one float at a time (-O2 does not vectorise a loop of unknown trip count), then with o reloaded
// and stored for every s; here a strip of o's columns stays in registers over all s. Each o[i]
// is its own chain, so vectors change no result as long as each level keeps the rounding its
// attend_head clone had: one fused multiply-add on AVX-512 (that clone contracted it), a multiply
// and an add on AVX2 (no FMA in that clone) and on plain x86-64.
__attribute__((target("avx512f"))) void weighted_sum_fma(const float* a, float inv, const float* v, int64_t ld, int np,
                                                       int n, float* o) {
  for (int c0 = 0; c0 < n; c0 += 64) {  // 4 registers of columns
    __mmask16 m[4];
    for (int j = 0; j < 4; ++j) {
      const int left = std::clamp(n - c0 - 16 * j, 0, 16);
      m[j] = static_cast<__mmask16>((1u << left) - 1);
    }
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int s = 0; s < np; ++s) {
      const __m512 w = _mm512_set1_ps(a[s] * inv);
      const float* vs = v + s * ld + c0;
      for (int j = 0; j < 4; ++j) acc[j] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m[j], vs + 16 * j), acc[j]);
    }
    for (int j = 0; j < 4; ++j) _mm512_mask_storeu_ps(o + c0 + 16 * j, m[j], acc[j]);
  }
}

__attribute__((target("avx2"))) void weighted_sum_avx2(const float* a, float inv, const float* v, int64_t ld, int np,
                                                     int n, float* o) {
  int c0 = 0;
  for (; c0 + 32 <= n; c0 += 32) {  // 4 registers of columns
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int s = 0; s < np; ++s) {
      const __m256 w = _mm256_set1_ps(a[s] * inv);
      const float* vs = v + s * ld + c0;
      for (int j = 0; j < 4; ++j) acc[j] = _mm256_add_ps(acc[j], _mm256_mul_ps(w, _mm256_loadu_ps(vs + 8 * j)));
    }
    for (int j = 0; j < 4; ++j) _mm256_storeu_ps(o + c0 + 8 * j, acc[j]);
  }
  std::fill(o + c0, o + n, 0.0f);
  for (int s = 0; s < np; ++s) {
    const float w = a[s] * inv;
    for (int i = c0; i < n; ++i) o[i] += w * v[s * ld + i];
  }
}

void weighted_sum(const float* a, float inv, const float* v, int64_t ld, int np, int n, float* o) {
  static const int level = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0;
  if (level == 2) return weighted_sum_fma(a, inv, v, ld, np, n, o);
  if (level == 1) return weighted_sum_avx2(a, inv, v, ld, np, n, o);
  std::fill(o, o + n, 0.0f);
  for (int s = 0; s < np; ++s) {
    const float w = a[s] * inv;
    for (int i = 0; i < n; ++i) o[i] += w * v[s * ld + i];
  }
}

// One head of one query position over cached keys/values 0..pos: k, v point at the head's
// columns of row 0 (row stride KV); a [pos + 1] scratch; o [hd]. Compiled for AVX-512 and AVX2
// too (the build's baseline is plain x86-64), picked by the loader from the CPU.
__attribute__((target_clones("avx512f", "avx2", "default"))) void attend_head(const float* qh, const float* k,
                                                                             const float* v, int64_t KV, int hd,
                                                                             int pos, float scale, float* a,
                                                                             float* o) {
  float mx = -INFINITY;
  for (int s = 0; s <= pos; ++s) {
    a[s] = dot8(qh, k + s * KV, hd) * scale;
    mx = std::max(mx, a[s]);
  }
  const float inv = 1.0f / kernels::exp_shift_sum(a, pos + 1, mx);  // a = exp(a − mx)
  weighted_sum(a, inv, v, KV, pos + 1, hd, o);
}

// One query position attending over cached keys/values 0..pos of one layer.
// q, attn_y: [nh, hd]   key, value: [seq_len, nkv, hd]   att: [nh, seq_len] scratch
void decode_attention(const LlamaConfig& c, const float* q, const float* key, const float* value, float* att,
                      float* attn_y, int pos) {
  const int hd = c.head_dim(), group = c.n_heads / c.n_kv_heads, KV = c.kv_dim();
  const float scale = 1.0f / std::sqrt(float(hd));
  // heads are independent (each has its own row of att): split them over the threads once the
  // context is long enough to pay for the fork
#pragma omp parallel for schedule(static) if (int64_t(pos + 1) * c.n_heads * hd >= 16384)
  for (int h = 0; h < c.n_heads; ++h) {
    const int kh = h / group;
    attend_head(q + h * hd, key + kh * hd, value + kh * hd, KV, hd, pos, scale, att + int64_t(h) * c.seq_len,
                attn_y + h * hd);
  }
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
    float* key = kc.key + l * S * KV;      // [S, KV]
    float* value = kc.value + l * S * KV;
    nn::rmsnorm_forward(kc.x, m.p.attn_norm + l * C, kc.xn, &kc.rstd, 1, C, c.norm_eps);
    ly.q->forward(kc.xn, kc.q, 1, ctx);
    ly.k->forward(kc.xn, key + pos * KV, 1, ctx);
    ly.v->forward(kc.xn, value + pos * KV, 1, ctx);
    nn::rope_forward(kc.q, 1, 1, c.n_heads, c.head_dim(), c.rope_theta, pos);
    nn::rope_forward(key + pos * KV, 1, 1, c.n_kv_heads, c.head_dim(), c.rope_theta, pos);
    decode_attention(c, kc.q, key, value, kc.att, kc.attn_y, pos);
    ly.o->forward(kc.attn_y, kc.tmp, 1, ctx);
    for (int64_t i = 0; i < C; ++i) kc.x[i] += kc.tmp[i];
    nn::rmsnorm_forward(kc.x, m.p.ffn_norm + l * C, kc.xn, &kc.rstd, 1, C, c.norm_eps);
    ly.gate->forward(kc.xn, kc.h1, 1, ctx);
    ly.up->forward(kc.xn, kc.h3, 1, ctx);
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
  m.carve_acts(1, n);
  nn::embedding_forward(tokens, m.p.token_embd, m.a.res, n, C);  // res[0]: [n, C]
  struct PrefillScope {  // block-quantized slots may run decoding's kernel on the prompt (Context)
    Context& ctx;
    explicit PrefillScope(Context& c) : ctx(c) { ctx.prefill = true; }
    ~PrefillScope() { ctx.prefill = false; }
  };
  std::optional<PrefillScope> scope(std::in_place, m.ctx);
  for (int l = 0; l < c.n_layers; ++l) {
    m.forward_layer(l);
    const int64_t i = m.li(l);  // k, v: [L, n, KV] → cache [L, S, KV] rows 0..n−1
    std::memcpy(kc.key + l * S * KV, m.a.k + i * n * KV, n * KV * sizeof(float));
    std::memcpy(kc.value + l * S * KV, m.a.v + i * n * KV, n * KV * sizeof(float));
  }
  scope.reset();
  const float* last = m.res_at(c.n_layers) + (n - 1) * C;
  nn::rmsnorm_forward(last, m.p.output_norm, kc.xn, &kc.rstd, 1, C, c.norm_eps);
  decode_classifier(c, m.output_packed, m.output_blocks, m.p.output, kc.xn, kc.logits);
  m.act_mem.resize(0);
  m.B = m.T = 0;
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
