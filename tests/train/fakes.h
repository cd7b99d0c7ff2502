// tests/train/fakes.h — small stand-ins for the model and the data, so the trainer can be
// tested exactly and fast: a bigram language model (embedding → output matrix → softmax
// cross-entropy) with a hand-written backward, a random-window batch source over a token
// sequence, and a fixed contiguous validation set.
#pragma once
#include <cmath>
#include <stdexcept>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "train/trainer.h"

namespace qtune::test {

// logits[v] = U[v] · E[token];  loss = mean over counted targets of −log softmax(logits)[target]
struct Bigram {
  int V, D;
  std::vector<float> E, U, gE, gU;  // [V, D] each
  std::vector<int> tok, tgt;        // saved by forward for backward
  std::vector<float> probs;         // [n, V]
  int64_t counted = 0;
  int forward_calls = 0, nan_at_call = -1;  // nan_at_call: forward returns NaN on that call

  Bigram(int v, int d, uint64_t seed) : V(v), D(d), E(v * d), U(v * d), gE(v * d), gU(v * d) {
    Rng rng(seed);
    for (auto& x : E) x = static_cast<float>(rng.normal() * 0.5);
    for (auto& x : U) x = static_cast<float>(rng.normal() * 0.5);
  }

  // Per-position probabilities of all V tokens after `t` (float, as forward computes them).
  void softmax_row(int t, float* p) const {
    float mx = -1e30f;
    for (int v = 0; v < V; ++v) {
      float s = 0;
      for (int d = 0; d < D; ++d) s += U[v * D + d] * E[t * D + d];
      p[v] = s;
      mx = std::max(mx, s);
    }
    float z = 0;
    for (int v = 0; v < V; ++v) z += (p[v] = std::exp(p[v] - mx));
    for (int v = 0; v < V; ++v) p[v] /= z;
  }

  float forward(const int* tokens, const int* targets, int B, int T) {
    const int n = B * T;
    tok.assign(tokens, tokens + n);
    tgt.assign(targets, targets + n);
    probs.resize(static_cast<size_t>(n) * V);
    double loss = 0;
    counted = 0;
    for (int i = 0; i < n; ++i) {
      softmax_row(tok[i], &probs[static_cast<size_t>(i) * V]);
      if (tgt[i] < 0) continue;
      loss -= std::log(probs[static_cast<size_t>(i) * V + tgt[i]]);
      ++counted;
    }
    if (forward_calls++ == nan_at_call) return std::nanf("");
    return static_cast<float>(loss / counted);
  }

  void backward() {
    for (size_t i = 0; i < tok.size(); ++i) {
      if (tgt[i] < 0) continue;
      const float* p = &probs[i * V];
      const float* e = &E[tok[i] * D];
      for (int v = 0; v < V; ++v) {
        const float dl = (p[v] - (v == tgt[i] ? 1.0f : 0.0f)) / static_cast<float>(counted);
        for (int d = 0; d < D; ++d) {
          gU[v * D + d] += dl * e[d];
          gE[tok[i] * D + d] += dl * U[v * D + d];
        }
      }
    }
  }

  void zero_grad() {
    std::fill(gE.begin(), gE.end(), 0.0f);
    std::fill(gU.begin(), gU.end(), 0.0f);
  }

  std::vector<Param<float>> trainable() {
    return {{"token_embd", E.data(), gE.data(), V * D, {V, D}}, {"output", U.data(), gU.data(), V * D, {V, D}}};
  }
};

// A token sequence from a noisy deterministic chain: mostly next = (3·cur + 1) mod V.
inline std::vector<int> chain_tokens(int V, int n, uint64_t seed) {
  Rng rng(seed);
  std::vector<int> s(n);
  s[0] = 0;
  for (int i = 1; i < n; ++i)
    s[i] = rng.uniform() < 0.8f ? (3 * s[i - 1] + 1) % V : static_cast<int>(rng.below(V));
  return s;
}

// Random windows drawn with the trainer's rng; state = {sequence length, batches drawn}.
// throw_after >= 0 simulates a crash: next() throws once that many batches were drawn.
struct WindowSource : BatchSource {
  std::vector<int> seq;
  uint64_t drawn = 0;
  int64_t throw_after = -1;

  explicit WindowSource(std::vector<int> s) : seq(std::move(s)) {}
  void next(int B, int T, int* tokens, int* targets, Rng& rng) override {
    if (throw_after >= 0 && drawn == static_cast<uint64_t>(throw_after)) throw std::runtime_error("simulated crash");
    for (int b = 0; b < B; ++b) {
      const size_t start = rng.below(seq.size() - T - 1);
      for (int t = 0; t < T; ++t) {
        tokens[b * T + t] = seq[start + t];
        targets[b * T + t] = seq[start + t + 1];
      }
    }
    ++drawn;
  }
  std::vector<uint64_t> state() const override { return {seq.size(), drawn}; }
  void set_state(const std::vector<uint64_t>& s) override {
    QT_CHECK(s.size() == 2 && s[0] == seq.size(), "data state does not fit this data");
    drawn = s[1];
  }
};

// Contiguous windows; in batch 0 the second half of every row is unscored (target −1), so a
// mean over batches and a mean over targets differ.
struct SeqEval : EvalSet {
  std::vector<int> seq;
  explicit SeqEval(std::vector<int> s) : seq(std::move(s)) {}
  int64_t num_batches(int B, int T) const override { return (seq.size() - 1) / (static_cast<size_t>(B) * T); }
  void batch(int64_t i, int B, int T, int* tokens, int* targets) const override {
    for (int j = 0; j < B * T; ++j) {
      const size_t k = static_cast<size_t>(i) * B * T + j;
      tokens[j] = seq[k];
      targets[j] = (i == 0 && j % T >= T / 2) ? -1 : seq[k + 1];
    }
  }
};

}  // namespace qtune::test
