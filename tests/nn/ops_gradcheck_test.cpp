// Finite-difference gradient checks (double precision) for every op in nn/ops.h.
//
// Each op is wrapped as a scalar loss L(inputs) = Σ G ⊙ op(inputs) with a fixed random G, so
// the analytic gradient is op_backward(dout = G). Central differences with h = 1e-5 have
// truncation error O(h²) ≈ 1e-10 and rounding error ≈ 1e-16/h ≈ 1e-11, far below the 1e-6
// bound. Backward must ACCUMULATE: gradients start from random values, and the test checks
// result − start against the finite differences.
#include <cmath>
#include <functional>
#include <omp.h>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "nn/ops.h"
#include "nn/grad_util.h"
#include "test_util.h"

using namespace qtune;
using namespace qtune::test::nngrad;

TEST(NnGrad, Embedding) {
  Rng rng(1);
  const int64_t V = 7, C = 5, N = 6;
  std::vector<int> tok = {3, 0, 3, 6, 1, 3};  // repeats: backward must sum them
  Vec table = randn(V * C, rng), G = randn(N * C, rng), out(N * C);
  auto f = [&] {
    nn::embedding_forward(tok.data(), table.data(), out.data(), N, C);
    return dot(out, G);
  };
  f();
  for (int64_t i = 0; i < N; ++i) EXPECT_EQ(out[i * C + 2], table[tok[i] * C + 2]);
  Vec start = randn(V * C, rng), dtable = start;
  nn::embedding_backward(tok.data(), G.data(), dtable.data(), N, C);
  expect_grad(dtable, start, numeric_grad(table, f), "dtable");
}

TEST(NnGrad, RmsNorm) {
  Rng rng(2);
  const int64_t N = 4, C = 9;
  Vec x = randn(N * C, rng), w = randn(C, rng), G = randn(N * C, rng), y(N * C), rstd(N);
  auto f = [&] {
    nn::rmsnorm_forward(x.data(), w.data(), y.data(), rstd.data(), N, C, 1e-5f);
    return dot(y, G);
  };
  f();
  // forward against the definition
  double ms = 0;
  for (int64_t c = 0; c < C; ++c) ms += x[C + c] * x[C + c];
  EXPECT_NEAR(y[C + 3], x[C + 3] / std::sqrt(ms / C + 1e-5) * w[3], 1e-12);
  Vec sx = randn(N * C, rng), sw = randn(C, rng), dx = sx, dw = sw;
  nn::rmsnorm_backward(G.data(), x.data(), w.data(), rstd.data(), dx.data(), dw.data(), N, C);
  expect_grad(dx, sx, numeric_grad(x, f), "dx");
  expect_grad(dw, sw, numeric_grad(w, f), "dw");
}

TEST(NnGrad, Rope) {
  Rng rng(3);
  const int64_t B = 2, T = 5, H = 3, hd = 8, pos0 = 2;
  Vec x = randn(B * T * H * hd, rng), G = randn(x.size(), rng);
  auto f = [&] {
    Vec y = x;
    nn::rope_forward(y.data(), B, T, H, hd, 10000.0f, pos0);
    return dot(y, G);
  };
  // forward against llama2.c's formula at one element: pair j=1 of (b=1, t=3, h=2)
  Vec y = x;
  nn::rope_forward(y.data(), B, T, H, hd, 10000.0f, pos0);
  int64_t off = ((1 * T + 3) * H + 2) * hd + 2;
  double ang = double(pos0 + 3) / std::pow(10000.0, 2.0 / hd);
  EXPECT_NEAR(y[off], x[off] * std::cos(ang) - x[off + 1] * std::sin(ang), 1e-12);
  EXPECT_NEAR(y[off + 1], x[off] * std::sin(ang) + x[off + 1] * std::cos(ang), 1e-12);
  Vec dx = G;  // rope backward is in place
  nn::rope_backward(dx.data(), B, T, H, hd, 10000.0f, pos0);
  expect_grad(dx, Vec(dx.size(), 0.0), numeric_grad(x, f), "dx");
}

TEST(NnGrad, AttentionGqa) {
  Rng rng(4);
  const int64_t B = 2, T = 5, nh = 4, nkv = 2, hd = 3;
  Vec q = randn(B * T * nh * hd, rng), k = randn(B * T * nkv * hd, rng), v = randn(B * T * nkv * hd, rng);
  Vec G = randn(q.size(), rng), out(q.size()), lse(B * nh * T);
  auto f = [&] {
    nn::attention_forward(q.data(), k.data(), v.data(), out.data(), lse.data(), B, T, nh, nkv, hd);
    return dot(out, G);
  };
  f();
  // causal: query 0 sees only key 0, so its output is v[0] of its kv head (h=3 → kv 1)
  for (int64_t i = 0; i < hd; ++i) EXPECT_NEAR(out[3 * hd + i], v[1 * hd + i], 1e-12);
  Vec sq = randn(q.size(), rng), sk = randn(k.size(), rng), sv = randn(v.size(), rng);
  Vec dq = sq, dk = sk, dv = sv;
  nn::attention_backward(G.data(), q.data(), k.data(), v.data(), out.data(), lse.data(), dq.data(), dk.data(),
                         dv.data(), B, T, nh, nkv, hd);
  expect_grad(dq, sq, numeric_grad(q, f), "dq");
  expect_grad(dk, sk, numeric_grad(k, f), "dk");
  expect_grad(dv, sv, numeric_grad(v, f), "dv");
}

TEST(NnGrad, SwiGlu) {
  Rng rng(5);
  const int64_t N = 20;
  Vec a = randn(N, rng, 2.0), b = randn(N, rng), G = randn(N, rng), out(N);
  auto f = [&] {
    nn::swiglu_forward(a.data(), b.data(), out.data(), N);
    return dot(out, G);
  };
  f();
  EXPECT_NEAR(out[4], a[4] / (1 + std::exp(-a[4])) * b[4], 1e-14);
  Vec sa = randn(N, rng), sb = randn(N, rng), da = sa, db = sb;
  nn::swiglu_backward(G.data(), a.data(), b.data(), da.data(), db.data(), N);
  expect_grad(da, sa, numeric_grad(a, f), "da");
  expect_grad(db, sb, numeric_grad(b, f), "db");
}

TEST(NnGrad, CrossEntropyIgnoresNegativeTargets) {
  Rng rng(6);
  const int64_t N = 5, V = 6;
  std::vector<int> tgt = {2, -1, 0, 5, -1};
  Vec z = randn(N * V, rng, 3.0), probs(N * V);
  auto f = [&] { return nn::cross_entropy_forward(z.data(), tgt.data(), probs.data(), N, V); };
  double loss = f();
  // against the definition: mean over the 3 counted rows of −log softmax
  double ref = 0;
  for (int64_t i : {0, 2, 3}) {
    double s = 0;
    for (int64_t j = 0; j < V; ++j) s += std::exp(z[i * V + j]);
    ref += -(z[i * V + tgt[i]] - std::log(s));
  }
  EXPECT_NEAR(loss, ref / 3, 1e-12);
  Vec start = randn(N * V, rng), dz = start;
  nn::cross_entropy_backward(probs.data(), tgt.data(), dz.data(), N, V);
  expect_grad(dz, start, numeric_grad(z, f), "dlogits");
  for (int64_t j = 0; j < V; ++j) EXPECT_EQ(dz[1 * V + j], start[1 * V + j]) << "ignored row got a gradient";
}

TEST(NnGrad, CrossEntropyAllIgnoredAndBadTarget) {
  Vec z(6, 0.5), p(6);
  std::vector<int> none = {-1, -1};
  EXPECT_EQ(nn::cross_entropy_forward(z.data(), none.data(), p.data(), 2, 3), 0.0);
  std::vector<int> bad = {1, 3};
  EXPECT_THROW(nn::cross_entropy_forward(z.data(), bad.data(), p.data(), 2, 3), Error);
}

TEST(NnOps, FloatMatchesDouble) {
  // The float instantiation runs the same code; spot-check attention + rmsnorm agree.
  Rng rng(7);
  const int64_t B = 1, T = 4, nh = 2, nkv = 1, hd = 4;
  Vec q = randn(B * T * nh * hd, rng), k = randn(B * T * nkv * hd, rng), v = randn(B * T * nkv * hd, rng);
  std::vector<float> qf(q.begin(), q.end()), kf(k.begin(), k.end()), vf(v.begin(), v.end());
  Vec out(q.size()), lse(B * nh * T);
  std::vector<float> outf(q.size()), lsef(lse.size());
  nn::attention_forward(q.data(), k.data(), v.data(), out.data(), lse.data(), B, T, nh, nkv, hd);
  nn::attention_forward(qf.data(), kf.data(), vf.data(), outf.data(), lsef.data(), B, T, nh, nkv, hd);
  EXPECT_LT(test::rel_err(outf.data(), out.data(), out.size()), 1e-6);
}

TEST(NnOps, AttentionBackwardThreadSafe) {
  // Large enough to take the OpenMP path (the FD tests above are below the threshold): the
  // result with 2 threads must equal the 1-thread result exactly (each dk/dv row has one owner).
  Rng rng(8);
  const int64_t B = 2, T = 24, nh = 4, nkv = 2, hd = 16;
  Vec q = randn(B * T * nh * hd, rng), k = randn(B * T * nkv * hd, rng), v = randn(B * T * nkv * hd, rng);
  Vec G = randn(q.size(), rng), out(q.size()), lse(B * nh * T);
  nn::attention_forward(q.data(), k.data(), v.data(), out.data(), lse.data(), B, T, nh, nkv, hd);
  Vec dq[2], dk[2], dv[2];
  for (int r = 0; r < 2; ++r) {
    omp_set_num_threads(r + 1);
    dq[r].assign(q.size(), 0);
    dk[r].assign(k.size(), 0);
    dv[r].assign(v.size(), 0);
    nn::attention_backward(G.data(), q.data(), k.data(), v.data(), out.data(), lse.data(), dq[r].data(),
                           dk[r].data(), dv[r].data(), B, T, nh, nkv, hd);
  }
  omp_set_num_threads(omp_get_num_procs());
  EXPECT_EQ(dq[0], dq[1]);
  EXPECT_EQ(dk[0], dk[1]);
  EXPECT_EQ(dv[0], dv[1]);
}
