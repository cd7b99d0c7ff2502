// models/attention_gse: attention's products in GSE against nn::ref::attention_* (the naive float attention, which saves att too) — the same
// contract (causal probabilities, accumulating gradients), an error of the size its width implies.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "models/attention_gse.h"
#include "nn/ops.h"

using namespace qtune;

namespace {

constexpr int64_t kB = 2, kT = 20, kNh = 4, kNkv = 2, kHd = 32;
constexpr int64_t kQ = kB * kT * kNh * kHd, kKv = kB * kT * kNkv * kHd, kAtt = kB * kNh * kT * kT;

std::vector<float> randn(int64_t n, Rng& rng, double scale) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.normal() * scale);
  return v;
}

double rel(const std::vector<float>& a, const std::vector<float>& b) {
  double e = 0, n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    e += std::pow(double(a[i]) - b[i], 2);
    n += double(b[i]) * b[i];
  }
  return std::sqrt(e / n);
}

struct Out {
  std::vector<float> out, att, dq, dk, dv;
};

// Forward and backward; gse = "" runs the float ops. Gradients start at 1 (they accumulate).
Out run(const char* gse) {
  Rng rng(4);
  const auto q = randn(kQ, rng, 1.0), k = randn(kKv, rng, 1.0), v = randn(kKv, rng, 1.0), dout = randn(kQ, rng, 0.01);
  Out o{std::vector<float>(kQ), std::vector<float>(kAtt), std::vector<float>(kQ, 1.0f), std::vector<float>(kKv, 1.0f),
        std::vector<float>(kKv, 1.0f)};
  if (*gse == 0) {
    nn::ref::attention_forward(q.data(), k.data(), v.data(), o.out.data(), o.att.data(), kB, kT, kNh, kNkv, kHd);
    nn::ref::attention_backward(dout.data(), q.data(), k.data(), v.data(), o.att.data(), o.dq.data(), o.dk.data(),
                                o.dv.data(), kB, kT, kNh, kNkv, kHd);
  } else {
    const GseArith ar(parse_gemm_mode(gse).spec, "attention");
    Context ctx;
    attention_forward_gse(q.data(), k.data(), v.data(), o.out.data(), o.att.data(), kB, kT, kNh, kNkv, kHd, ar);
    attention_backward_gse(dout.data(), q.data(), k.data(), v.data(), o.att.data(), o.dq.data(), o.dk.data(),
                           o.dv.data(), kB, kT, kNh, kNkv, kHd, ar, ctx, 0);
  }
  for (auto* g : {&o.dq, &o.dk, &o.dv})
    for (auto& x : *g) x -= 1.0f;  // what was accumulated
  return o;
}

}  // namespace

TEST(AttentionGse, CloseToFloatAndCloserWithMoreBits) {
  const Out f = run(""), q8 = run("gse:b=8"), q5 = run("gse:b=5"), s8 = run("gse:b=8,round=stochastic");
  // causal probabilities: rows sum to 1, zeros above the diagonal
  for (int64_t r = 0; r < kB * kNh * kT; ++r) {
    const int64_t t = r % kT;
    double sum = 0;
    for (int64_t s = 0; s < kT; ++s) {
      sum += q8.att[r * kT + s];
      if (s > t) {
        EXPECT_EQ(q8.att[r * kT + s], 0.0f);
      }
    }
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
  const std::vector<float> Out::*fields[] = {&Out::out, &Out::att, &Out::dq, &Out::dk, &Out::dv};
  for (auto fld : fields) {
    EXPECT_GT(rel(q8.*fld, f.*fld), 0.0);
    EXPECT_LT(rel(q8.*fld, f.*fld), 0.03);
    EXPECT_LT(rel(s8.*fld, f.*fld), 0.05);
    EXPECT_GT(rel(q5.*fld, f.*fld), 3 * rel(q8.*fld, f.*fld));
    EXPECT_LT(rel(q5.*fld, f.*fld), 0.3);
  }
}
