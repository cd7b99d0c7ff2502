// kernels/gse_ops: transposed encoding, the shared operands, and reuse inside a GseReuse scope.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/rng.h"
#include "kernels/gse_ops.h"

using namespace qtune;

namespace {

std::vector<float> randn(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.normal());
  return v;
}

bool same(const GseMatrix& a, const GseMatrix& b) {
  return a.rows == b.rows && a.cols == b.cols && a.mant.size() == b.mant.size() &&
         std::memcmp(a.mant.data(), b.mant.data(), a.mant.size()) == 0 &&
         std::memcmp(a.exps.data(), b.exps.data(), a.exps.size() * 2) == 0;
}

}  // namespace

TEST(GseOps, TransposedEncodingIsTheEncodingOfTheTranspose) {
  const int64_t rows = 70, cols = 150;  // odd shapes: short groups both ways; 3 blocks of 64 rows of xᵀ
  const auto x = randn(rows * cols, 1);
  std::vector<float> t(x.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t[c * rows + r] = x[r * cols + c];
  GseSpec spec;
  spec.bits = 6;
  GseMatrix q;
  kernels::gse_encode_t(x.data(), rows, cols, spec, q);
  EXPECT_TRUE(same(q, gse_encode(t.data(), cols, rows, spec)));
  EXPECT_TRUE(same(kernels::gse_operand_t(kernels::GseRole::dyt, x.data(), rows, cols, spec), q));
}

// Inside a scope an input (roles x, xt) encoded from the same pointer, shape and spec is not
// encoded again — so a write to it in between is not seen, which is the promise the caller makes;
// other roles, other pointers and no scope always encode.
TEST(GseOps, ReuseOnlyInsideAScopeAndOnlyForInputs) {
  using kernels::GseRole;
  const int64_t rows = 16, cols = 64;
  auto x = randn(rows * cols, 2);
  const auto other = randn(rows * cols, 3);
  const GseSpec spec;
  const GseMatrix before = gse_encode(x.data(), rows, cols, spec);
  {
    const kernels::GseReuse scope;
    kernels::gse_operand(GseRole::x, x.data(), rows, cols, spec);
    kernels::gse_operand(GseRole::dy, x.data(), rows, cols, spec);
    for (auto& v : x) v *= 2;
    EXPECT_TRUE(same(kernels::gse_operand(GseRole::x, x.data(), rows, cols, spec), before));   // reused
    EXPECT_FALSE(same(kernels::gse_operand(GseRole::dy, x.data(), rows, cols, spec), before)); // a gradient: encoded
    kernels::gse_operand(GseRole::x, other.data(), rows, cols, spec);  // another input evicts it
    EXPECT_FALSE(same(kernels::gse_operand(GseRole::x, x.data(), rows, cols, spec), before));
  }
  for (auto& v : x) v *= 0.5f;  // back to the values of `before`
  EXPECT_TRUE(same(kernels::gse_operand(GseRole::x, x.data(), rows, cols, spec), before));
  for (auto& v : x) v *= 2;
  EXPECT_FALSE(same(kernels::gse_operand(GseRole::x, x.data(), rows, cols, spec), before));  // no scope: encoded
  for (auto& v : x) v *= 0.5f;
  const kernels::GseReuse next;  // a new scope does not see encodings made before it
  EXPECT_TRUE(same(kernels::gse_operand(GseRole::x, x.data(), rows, cols, spec), before));
}
