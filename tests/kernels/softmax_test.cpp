// kernels/softmax.h at every level the CPU has: row_max exactly, exp within a few ulp of
// std::exp (the scalar level is std::exp itself), sums equal up to float rounding, on lengths
// with and without vector tails and on inputs far below the maximum.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "kernels/cpu_features.h"
#include "kernels/softmax.h"

using namespace qtune;
using kernels::Isa;

namespace {

constexpr Isa kLevels[] = {Isa::scalar, Isa::avx2, Isa::avx512f, Isa::avx512bw, Isa::avx512vnni};

std::vector<float> logits(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> z(static_cast<size_t>(n));
  for (auto& x : z) x = float(4.0 * rng.normal());
  if (n > 3) z[2] = -300.0f, z[3] = 60.0f;  // far below the max (underflows to ~0), and the max
  return z;
}

}  // namespace

TEST(Softmax, EveryLevelMatchesStdExp) {
  int levels = 0;
  for (Isa isa : kLevels) {
    if (!kernels::isa_supported(isa)) continue;
    ++levels;
    for (int64_t n : {1, 5, 8, 15, 16, 17, 31, 33, 100, 32000}) {
      SCOPED_TRACE(std::string(kernels::isa_name(isa)) + " n=" + std::to_string(n));
      std::vector<float> z = logits(n, 7 + n);
      float mx = z[0];
      for (float x : z) mx = std::max(mx, x);
      EXPECT_EQ(kernels::row_max(z.data(), n, isa), mx);
      const std::vector<float> in = z;
      const float sum = kernels::exp_shift_sum(z.data(), n, mx, isa);
      double ref_sum = 0;
      for (int64_t j = 0; j < n; ++j) {
        const double ref = std::exp(double(in[j] - mx));  // the argument rounded to float, as the kernel has it
        ref_sum += ref;
        ASSERT_TRUE(std::isfinite(z[j]) && z[j] >= 0);
        // a few ulp of the result, or absolutely nothing next to the max's 1
        EXPECT_NEAR(z[j], ref, 4e-7 * ref + 1e-37) << j << " x=" << in[j] - mx;
      }
      EXPECT_NEAR(sum, ref_sum, 2e-6 * ref_sum);
    }
  }
  EXPECT_GE(levels, 1);
}
