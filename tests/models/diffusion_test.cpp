// Diffusion (models/diffusion.h): the schedule against its closed form, training batches, DDIM
// against an oracle denoiser, determinism (η = 0) and seeds (η = 1), guidance, a real DiT.
#include <cmath>
#include <vector>

#include "core/error.h"
#include "models/diffusion.h"
#include "models/dit.h"
#include "models/tiny_dit.h"
#include "test_util.h"

using namespace qtune;

TEST(Diffusion, LinearScheduleMatchesClosedForm) {
  NoiseSchedule s = NoiseSchedule::linear();
  ASSERT_EQ(s.steps, 1000);
  EXPECT_DOUBLE_EQ(s.alpha_bar[0], 1 - 1e-4);
  double prod = 1;
  for (int t = 0; t < 1000; ++t) prod *= 1 - (1e-4 + (0.02 - 1e-4) * t / 999.0);
  EXPECT_NEAR(s.alpha_bar[999], prod, 1e-18);
  EXPECT_NEAR(s.alpha_bar[999], 4.036e-5, 1e-7);  // DDPM's value
}

TEST(Diffusion, BatchIsTheForwardProcessWithDropout) {
  NoiseSchedule s = NoiseSchedule::linear();
  const int B = 2000;
  const int64_t n = 3;
  std::vector<float> x0(B * n, 0.5f);
  std::vector<int> labels(B, 4);
  Rng rng(1), again(1);
  DiffusionBatch b, b2;
  make_diffusion_batch(s, x0.data(), labels.data(), B, n, 10, 0.1f, rng, b);
  make_diffusion_batch(s, x0.data(), labels.data(), B, n, 10, 0.1f, again, b2);
  EXPECT_EQ(b.x_t, b2.x_t);
  EXPECT_EQ(b.y, b2.y);
  int nulls = 0, lo = 1000, hi = -1;
  for (int i = 0; i < B; ++i) {
    nulls += b.y[i] == 10;
    EXPECT_TRUE(b.y[i] == 10 || b.y[i] == 4);
    lo = std::min(lo, b.t[i]), hi = std::max(hi, b.t[i]);
    const double a = s.alpha_bar[b.t[i]];
    EXPECT_NEAR(b.x_t[i * n + 1], std::sqrt(a) * 0.5 + std::sqrt(1 - a) * b.eps[i * n + 1], 1e-6);
  }
  EXPECT_NEAR(nulls / double(B), 0.1, 0.02);
  EXPECT_LT(lo, 10);
  EXPECT_GT(hi, 990);
}

// The oracle knows x0*: ε̂ = (x_t − √ᾱ_t·x0*)/√(1 − ᾱ_t), so x̂_0 = x0* at every step, and
// DDIM must land on x0* for any sub-sequence and any η.
TEST(Diffusion, DdimWithAnOracleReturnsItsTarget) {
  NoiseSchedule s = NoiseSchedule::linear();
  const int B = 2;
  const int64_t n = 5;
  std::vector<float> target = {0.9f, -0.3f, 0.1f, 0.0f, -1.0f, 0.5f, 0.25f, -0.75f, 0.6f, 0.2f};
  EpsModel oracle = [&](const float* x, const int* t, const int*, int Bn, float* eps) {
    for (int b = 0; b < Bn; ++b) {
      const double a = s.alpha_bar[t[b]];
      for (int64_t i = 0; i < n; ++i)
        eps[b * n + i] = float((x[b * n + i] - std::sqrt(a) * target[(b % B) * n + i]) / std::sqrt(1 - a));
    }
  };
  std::vector<int> classes = {0, 1};
  for (float eta : {0.0f, 1.0f})
    for (const std::vector<int>& ts : {ddim_timesteps(1000, 50), ddim_timesteps(1000, 7), std::vector<int>{999, 500, 3}}) {
      DdimOptions o;
      o.timesteps = ts;
      o.eta = eta;
      o.seed = 3;
      std::vector<float> x = ddim_sample(oracle, s, classes.data(), B, n, o);
      for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(x[i], target[i], 1e-4) << "eta " << eta << " i " << i;
    }
}

// One step from t = 500 to 250 for x0 = 0 (the oracle ε̂ = x_t/√(1 − ᾱ_t)), x_t ~ N(0, 1 − ᾱ_t):
// any η keeps the marginal N(0, 1 − ᾱ_p) (σ² comes out of the ε̂ direction and back as noise),
// and η = 0 is the deterministic √((1 − ᾱ_p)/(1 − ᾱ_t))·x_t.
TEST(Diffusion, DdimStepKeepsTheMarginal) {
  NoiseSchedule s = NoiseSchedule::linear();
  const double at = s.alpha_bar[500], ap = s.alpha_bar[250];
  const int64_t n = 40000;
  Rng rng(5);
  std::vector<float> xt(n), eps(n);
  for (int64_t i = 0; i < n; ++i) {
    xt[i] = float(std::sqrt(1 - at) * rng.normal());
    eps[i] = float(xt[i] / std::sqrt(1 - at));
  }
  for (float eta : {0.0f, 1.0f}) {
    std::vector<float> x = xt;
    ddim_step(x.data(), eps.data(), n, at, ap, eta, false, rng);
    double var = 0;
    for (float v : x) var += double(v) * v / n;
    EXPECT_NEAR(var, 1 - ap, 0.02 * (1 - ap)) << "eta " << eta;
    if (eta == 0) {
      EXPECT_NEAR(x[7], std::sqrt((1 - ap) / (1 - at)) * xt[7], 1e-5);
    }
  }
}

TEST(Diffusion, DdimEtaZeroIsDeterministicEtaOneDependsOnSeed) {
  const DitConfig c = test::tiny_dit_config();
  MethodOptions mo;
  mo.method = "full";
  Dit<float> m(test::random_dit(c, 5, 0.3), mo, 1);
  EpsModel model = [&](const float* x, const int* t, const int* y, int B, float* eps) {
    m.forward(x, t, y, nullptr, B);
    std::copy(m.prediction(), m.prediction() + B * c.image_numel(), eps);
  };
  NoiseSchedule s = NoiseSchedule::linear();
  std::vector<int> classes = {0, 2, 1};
  auto run = [&](float eta, uint64_t seed, std::vector<int> ts) {
    DdimOptions o;
    o.timesteps = std::move(ts);
    o.eta = eta;
    o.seed = seed;
    o.guidance = 2.0f;
    o.null_class = c.null_class();
    return ddim_sample(model, s, classes.data(), 3, c.image_numel(), o);
  };
  const auto ts = ddim_timesteps(1000, 10);
  EXPECT_EQ(run(0, 7, ts), run(0, 7, ts));
  EXPECT_EQ(run(1, 7, ts), run(1, 7, ts));
  EXPECT_NE(run(1, 7, ts), run(1, 8, ts));
  EXPECT_NE(run(0, 7, ts), run(1, 7, ts)) << "eta must change the path";
  EXPECT_NE(run(0, 7, ts), run(0, 7, ddim_timesteps(1000, 5))) << "the sub-sequence must matter";
}

TEST(Diffusion, GuidanceCombinesConditionalAndNull) {
  std::vector<float> ec = {1, 2}, eu = {0.5f, -1}, out(2);
  cfg_combine(ec.data(), eu.data(), 3.0f, 2, out.data());
  EXPECT_FLOAT_EQ(out[0], 0.5f + 3 * 0.5f);
  EXPECT_FLOAT_EQ(out[1], -1 + 3 * 3.0f);
  // w ≠ 1 calls the model on [cond; null] (the null class is the second half)
  NoiseSchedule s = NoiseSchedule::linear();
  std::vector<int> seen;
  EpsModel spy = [&](const float*, const int*, const int* y, int B, float* eps) {
    seen.assign(y, y + B);
    for (int i = 0; i < B; ++i) eps[i] = y[i] == 9 ? 0.0f : 1.0f;
  };
  std::vector<int> classes = {3, 4};
  DdimOptions o;
  o.timesteps = {999};
  o.guidance = 4.0f;
  o.null_class = 9;
  ddim_sample(spy, s, classes.data(), 2, 1, o);
  EXPECT_EQ(seen, (std::vector<int>{3, 4, 9, 9}));
  o.guidance = 1.0f;
  ddim_sample(spy, s, classes.data(), 2, 1, o);
  EXPECT_EQ(seen, (std::vector<int>{3, 4}));
}

TEST(Diffusion, BadOptionsAreErrors) {
  NoiseSchedule s = NoiseSchedule::linear();
  EpsModel none = [](const float*, const int*, const int*, int, float*) {};
  int cls = 0;
  DdimOptions o;
  o.timesteps = {10, 10};
  EXPECT_NE(test::error_of([&] { ddim_sample(none, s, &cls, 1, 1, o); }).find("timesteps must decrease"),
            std::string::npos);
  o.timesteps = {1000};
  EXPECT_NE(test::error_of([&] { ddim_sample(none, s, &cls, 1, 1, o); }).find("timestep 1000 is outside 0..999"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { ddim_timesteps(1000, 0); }).find("need 1..1000"), std::string::npos);
}
