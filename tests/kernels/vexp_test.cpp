// kernels/vexp: exp_shift_sum at every level the CPU has, against exp in double: each value to
// a few float ulps, the sum to float rounding; the edges a softmax meets (−inf masked scores,
// arguments far below the float range, the row max itself → exactly 1), every tail length.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "kernels/vexp.h"

using namespace qtune;
using kernels::Isa;

namespace {

std::vector<Isa> levels() {
  std::vector<Isa> v;
  for (Isa i : {Isa::scalar, Isa::avx2, Isa::avx512f, Isa::avx512bw, Isa::avx512vnni})
    if (kernels::isa_supported(i)) v.push_back(i);
  return v;
}

TEST(Vexp, MatchesDoubleExpAtEveryLevelAndLength) {
  for (Isa isa : levels())
    for (int64_t n : {0, 1, 7, 8, 9, 31, 64, 100}) {
      Rng rng(uint64_t(n) + 1);
      std::vector<float> x(n);
      for (auto& v : x) v = float(rng.uniform() * 30.0 - 25.0);  // x − shift in [−30, 5]
      const float shift = 5.0f;
      std::vector<float> y = x;
      const float sum = kernels::exp_shift_sum(y.data(), n, shift, isa);
      double want_sum = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double want = std::exp(double(x[i] - shift));  // the float argument both paths see
        want_sum += want;
        EXPECT_NEAR(y[i], want, 4e-7 * want) << kernels::isa_name(isa) << " n=" << n << " i=" << i;
      }
      EXPECT_NEAR(sum, want_sum, 1e-6 * want_sum + 1e-30) << kernels::isa_name(isa) << " n=" << n;
    }
}

TEST(Vexp, EdgesOfASoftmaxRow) {
  for (Isa isa : levels()) {
    // the max itself, a masked score, far below the range, just above the cut, a large argument
    std::vector<float> x = {2.0f, -INFINITY, -1000.0f, 2.0f - 87.0f, 2.0f + 80.0f, 2.0f, 1.0f, 0.0f, -3.0f};
    const float sum = kernels::exp_shift_sum(x.data(), int64_t(x.size()), 2.0f, isa);
    EXPECT_EQ(x[0], 1.0f) << kernels::isa_name(isa);
    EXPECT_EQ(x[1], 0.0f) << kernels::isa_name(isa);
    EXPECT_EQ(x[2], 0.0f) << kernels::isa_name(isa);
    EXPECT_NEAR(x[3], std::exp(-87.0), 1e-6 * std::exp(-87.0)) << kernels::isa_name(isa);
    EXPECT_NEAR(x[4], std::exp(80.0), 1e-6 * std::exp(80.0)) << kernels::isa_name(isa);
    EXPECT_EQ(x[5], 1.0f) << kernels::isa_name(isa);
    EXPECT_TRUE(std::isfinite(sum)) << kernels::isa_name(isa);
  }
}

}  // namespace
