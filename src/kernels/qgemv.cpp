// kernels/qgemv.cpp — y = deq(W)·x for one token and a ≤4-bit W, with run-time CPU dispatch
// (kernels/cpu_features.h).
#include "kernels/qgemv.h"

#include <algorithm>

#include "core/buffer.h"
#include "core/error.h"

namespace qtune::kernels {

namespace {

// The variants this file has; each level runs the best one it includes.
enum class Path { scalar, avx2, avx512 };

Path path_for(Isa isa) {
  if (isa >= Isa::avx512f) return Path::avx512;
  if (isa >= Isa::avx2) return Path::avx2;
  return Path::scalar;
}

}  // namespace

void qgemv4(const float* x, const QuantMatrix& W, float* y, bool accumulate) {
  qgemv4(x, W, y, accumulate, cpu_isa());
}

void qgemv4(const float* x, const QuantMatrix& W, float* y, bool accumulate, Isa isa) {
  QT_ASSERT(W.spec.bits <= 4 && isa_supported(isa));
  const Path path = path_for(isa);
  using Dot = float (*)(const uint8_t*, const float*, int64_t, int64_t);
  const Dot dot = path == Path::avx512 ? qdot4_avx512 : path == Path::avx2 ? qdot4_avx2 : qdot4_scalar;
  const int64_t in = W.cols, out = W.rows, gs = W.group_size(), ng = W.groups_per_row(), rb = W.row_bytes();
  // xsum[g] = Σ_{c∈g} x_c, shared by every row (the zero-point term)
  Buffer<float> xsum(static_cast<size_t>(ng));
  for (int64_t g = 0; g < ng; ++g)
    for (int64_t c = g * gs; c < std::min(in, (g + 1) * gs); ++c) xsum[g] += x[c];
  const float sym_off = W.spec.symmetric ? static_cast<float>(1 << (W.spec.bits - 1)) : 0.0f;
  // whole-row SIMD kernels when every group starts on a vector boundary
  const bool row_kernel = (path == Path::avx512 && gs % 16 == 0) || (path == Path::avx2 && gs % 8 == 0);
  // rows are independent; each y[o] is summed by one thread in a fixed order
#pragma omp parallel for schedule(static, 16)
  for (int64_t o = 0; o < out; ++o) {
    const uint8_t* codes = W.codes.data() + o * rb;
    const float* scale = W.scale.data() + o * ng;
    float acc = 0, offset_term = 0;  // Σ_g Δ_g·Σ q·x   and   Σ_g Δ_g·off_g·xsum_g
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t c0 = g * gs, c1 = std::min(in, c0 + gs);
      const float off = W.spec.symmetric ? sym_off : W.zero[o * ng + g];
      offset_term += scale[g] * off * xsum[g];
      if (!row_kernel) acc += scale[g] * dot(codes, x, c0, c1);
    }
    if (row_kernel)
      acc = path == Path::avx512 ? qrow4_avx512(codes, x, scale, in, gs) : qrow4_avx2(codes, x, scale, in, gs);
    acc -= offset_term;
    y[o] = accumulate ? y[o] + acc : acc;
  }
}

}  // namespace qtune::kernels
