// kernels/qgemv.cpp — y = deq(W)·x for one token and a ≤4-bit W, with run-time CPU dispatch.
#include "kernels/qgemv.h"

#include <algorithm>

#include "core/buffer.h"
#include "core/error.h"
#include "kernels/gemm.h"
#include "kernels/igemm.h"

namespace qtune::kernels {

bool simd_path_supported(SimdPath p) {
  switch (p) {
    case SimdPath::scalar: return true;
    case SimdPath::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case SimdPath::avx512: return __builtin_cpu_supports("avx512f");
  }
  return false;
}

SimdPath best_simd_path() {
  static const SimdPath best = simd_path_supported(SimdPath::avx512) ? SimdPath::avx512
                               : simd_path_supported(SimdPath::avx2) ? SimdPath::avx2
                                                                     : SimdPath::scalar;
  return best;
}

// vpdpbusd/vpdpwssd (the integer GEMM's AVX-512 loops also need BW's byte and word ops)
bool has_avx512_vnni() {
  static const bool vnni = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                           __builtin_cpu_supports("avx512vnni");
  return vnni;
}

const char* cpu_features() {
  switch (best_simd_path()) {
    case SimdPath::avx512: return has_avx512_vnni() ? "avx512-vnni" : "avx512";
    case SimdPath::avx2: return "avx2";
    case SimdPath::scalar: return "scalar";
  }
  return "scalar";
}

void qgemv4(const float* x, const QuantMatrix& W, float* y, bool accumulate) {
  qgemv4(x, W, y, accumulate, best_simd_path());
}

void qgemv4(const float* x, const QuantMatrix& W, float* y, bool accumulate, SimdPath path) {
  QT_ASSERT(W.spec.bits <= 4 && simd_path_supported(path));
  using Dot = float (*)(const uint8_t*, const float*, int64_t, int64_t);
  const Dot dot = path == SimdPath::avx512 ? qdot4_avx512 : path == SimdPath::avx2 ? qdot4_avx2 : qdot4_scalar;
  const int64_t in = W.cols, out = W.rows, gs = W.group_size(), ng = W.groups_per_row(), rb = W.row_bytes();
  // xsum[g] = Σ_{c∈g} x_c, shared by every row (the zero-point term)
  Buffer<float> xsum(static_cast<size_t>(ng));
  for (int64_t g = 0; g < ng; ++g)
    for (int64_t c = g * gs; c < std::min(in, (g + 1) * gs); ++c) xsum[g] += x[c];
  const float sym_off = W.spec.symmetric ? static_cast<float>(1 << (W.spec.bits - 1)) : 0.0f;
  // whole-row SIMD kernels when every group starts on a vector boundary
  const bool row_kernel = (path == SimdPath::avx512 && gs % 16 == 0) || (path == SimdPath::avx2 && gs % 8 == 0);
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
      acc = path == SimdPath::avx512 ? qrow4_avx512(codes, x, scale, in, gs) : qrow4_avx2(codes, x, scale, in, gs);
    acc -= offset_term;
    y[o] = accumulate ? y[o] + acc : acc;
  }
}

}  // namespace qtune::kernels
