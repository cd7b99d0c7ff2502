// Finite-difference gradient checks in double precision for every method: dx and every
// trainable parameter, for the loss L = Σ y ⊙ r (r random, so dL/dy = r).
#include <memory>
#include <vector>

#include "adapters/linear.h"
#include "fd_util.h"
#include "test_util.h"

using namespace qtune;

namespace {

constexpr int64_t kN = 4, kIn = 13, kOut = 6;

Tensor random_weight(Rng& rng) {
  Tensor w({kOut, kIn});
  for (auto& v : w.data) v = static_cast<float>(rng.normal() * 0.5);
  return w;
}

std::vector<double> randn(int64_t n, Rng& rng) { return test::randn_double(n, rng); }

double numeric(Linear<double>& lin, double* v, const std::vector<double>& x, const std::vector<double>& r) {
  return test::central_difference(lin, v, x, r, kN, 1e-5);
}

void check_gradients(const MethodOptions& opts, size_t expect_params) {
  Rng rng(42);
  Tensor w = random_weight(rng);
  auto lin = make_linear<double>(opts, "blk.0.attn_q", w, true, rng);
  auto params = lin->trainable();
  ASSERT_EQ(params.size(), expect_params) << opts.method;
  // B starts at zero, which would make dA vanish: give every parameter a random value.
  for (auto& p : params)
    for (int64_t i = 0; i < p.numel; ++i) p.value[i] = rng.normal() * 0.3;
  auto x = randn(kN * kIn, rng), r = randn(kN * kOut, rng);

  std::vector<double> dx(kN * kIn, 0.0);
  Context ctx;
  lin->backward(x.data(), r.data(), dx.data(), kN, ctx);
  for (int64_t i = 0; i < kN * kIn; ++i)
    EXPECT_NEAR(dx[i], numeric(*lin, &x[i], x, r), 1e-7) << opts.method << " dx[" << i << "]";
  for (auto& p : params)
    for (int64_t i = 0; i < p.numel; ++i)
      EXPECT_NEAR(p.grad[i], numeric(*lin, &p.value[i], x, r), 1e-7) << opts.method << " " << p.name << "[" << i << "]";

  // backward accumulates: a second call doubles every gradient (and dx)
  std::vector<std::vector<double>> first;
  for (auto& p : params) first.emplace_back(p.grad, p.grad + p.numel);
  auto dx1 = dx;
  lin->backward(x.data(), r.data(), dx.data(), kN, ctx);
  for (size_t i = 0; i < dx.size(); ++i) EXPECT_NEAR(dx[i], 2 * dx1[i], 1e-12);
  for (size_t k = 0; k < params.size(); ++k)
    for (int64_t i = 0; i < params[k].numel; ++i) EXPECT_NEAR(params[k].grad[i], 2 * first[k][i], 1e-12);
  // and dx = nullptr is allowed (first layer)
  lin->backward(x.data(), r.data(), nullptr, kN, ctx);
}

MethodOptions opts(const std::string& method) {
  MethodOptions o;
  o.method = method;
  o.rank = 3;
  o.alpha = 5.0f;
  return o;
}

}  // namespace

TEST(GradCheck, Full) { check_gradients(opts("full"), 1); }
TEST(GradCheck, Lora) { check_gradients(opts("lora"), 2); }
TEST(GradCheck, QLora) { check_gradients(opts("qlora"), 2); }

// LoLDU: z (and σ) on a float and on a b-bit base (docs/METHODS.md §7).
TEST(GradCheck, Loldu) {
  for (const char* m : {"loldu", "qloldu"})
    for (bool train_scale : {false, true})
      for (const char* init : {"lu", "uniform", "constant", "normal"}) {
        auto o = opts(m);
        o.loldu_train_scale = train_scale;
        o.loldu_init = init;
        SCOPED_TRACE(std::string(m) + " " + init);
        check_gradients(o, train_scale ? 2 : 1);
      }
}

TEST(GradCheck, QLoraGroupedSymmetric3Bit) {
  auto o = opts("qlora");
  o.bits = 3;
  o.group = 5;
  o.symmetric = true;
  o.scale_search = "mse";
  check_gradients(o, 2);
}

// Frozen slots (non-targeted) still pass gradients to x and own no parameters.
TEST(GradCheck, FrozenSlotsPassDx) {
  for (const char* m : {"full", "lora", "qlora", "loldu", "qloldu", "qaloldu"}) {
    Rng rng(7);
    Tensor w = random_weight(rng);
    auto lin = make_linear<double>(opts(m), "blk.0.ffn_up", w, false, rng);
    EXPECT_TRUE(lin->trainable().empty()) << m;
    auto x = randn(kN * kIn, rng), r = randn(kN * kOut, rng);
    std::vector<double> dx(kN * kIn, 0.0);
    Context ctx;
    lin->backward(x.data(), r.data(), dx.data(), kN, ctx);
    for (int64_t i = 0; i < kN * kIn; ++i) EXPECT_NEAR(dx[i], numeric(*lin, &x[i], x, r), 1e-7) << m;
  }
}
