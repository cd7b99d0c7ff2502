// kernels/gemm_bf16.cpp — bf16 GEMMs on oneDNN's matmul (contract: gemm_bf16.h).
//
// Per call: both operands are converted to dense bf16 copies in their stored layout (thread-
// local buffers that grow and stay), oneDNN multiplies them into the float C (alpha as an output
// scale, beta as a sum post-op). Primitives are created once per shape and kept: a training run
// repeats a few dozen shapes, and creating one costs far more than running a small one.
#include "kernels/gemm_bf16.h"

#include <immintrin.h>
#include <omp.h>

#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "kernels/cpu_features.h"
#include "quant/bf16.h"

namespace qtune::kernels {

namespace {

bool g_bf16 = false;

__attribute__((target("avx512f,avx512bf16"))) void row_bf16_avx512(const float* s, int64_t n, uint16_t* d) {
  int64_t c = 0;
  for (; c + 16 <= n; c += 16) {
    const __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(s + c));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + c), reinterpret_cast<const __m256i&>(h));
  }
  for (; c < n; ++c) d[c] = fp32_to_bf16(s[c]);
}

void row_bf16(const float* s, int64_t n, uint16_t* d) {
  if (bf16_gemm_supported()) return row_bf16_avx512(s, n, d);
  for (int64_t c = 0; c < n; ++c) d[c] = fp32_to_bf16(s[c]);
}

struct Key {
  bool ta, tb;
  int64_t M, N, K, ldc;
  float alpha, beta;
  bool operator<(const Key& o) const {
    return std::tie(ta, tb, M, N, K, ldc, alpha, beta) < std::tie(o.ta, o.tb, o.M, o.N, o.K, o.ldc, o.alpha, o.beta);
  }
};

struct Library {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  std::mutex mu;
  std::map<Key, dnnl::matmul> primitives;
};

Library& library() {
  static Library lib;
  return lib;
}

using dnnl::memory;

// op(X) [rows, cols] of a dense bf16 copy stored untransposed ([rows][cols]) or transposed.
memory::desc bf16_desc(int64_t rows, int64_t cols, bool transposed) {
  return memory::desc({rows, cols}, memory::data_type::bf16, transposed ? memory::dims{1, rows} : memory::dims{cols, 1});
}

dnnl::matmul primitive(Library& lib, const Key& k) {
  std::lock_guard<std::mutex> lock(lib.mu);
  auto it = lib.primitives.find(k);
  if (it != lib.primitives.end()) return it->second;
  dnnl::primitive_attr attr;
  if (k.alpha != 1.0f) attr.set_output_scales(0, {k.alpha});
  if (k.beta != 0.0f) {
    dnnl::post_ops ops;
    ops.append_sum(k.beta);
    attr.set_post_ops(ops);
  }
  const memory::desc c({k.M, k.N}, memory::data_type::f32, memory::dims{k.ldc, 1});
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(bf16_desc(k.M, k.K, k.ta), bf16_desc(k.K, k.N, k.tb), c),
                                        attr, lib.engine);
  return lib.primitives.emplace(k, dnnl::matmul(pd)).first->second;
}

struct Pinned {
  const float* src;
  int64_t rows, cols;
  std::vector<uint16_t> bf16;
};
std::vector<Pinned> g_pins;  // few (one per live Bf16Pin), searched linearly

// The stored matrix (rows × cols at leading dimension ld) as dense bf16: a pinned copy, or
// converted into `buf` with the rows split over threads.
const uint16_t* to_bf16(const float* src, int64_t rows, int64_t cols, int64_t ld, std::vector<uint16_t>& buf) {
  for (const Pinned& p : g_pins)
    if (p.src == src && p.rows == rows && p.cols == cols && ld == cols) return p.bf16.data();
  if (buf.size() < size_t(rows * cols)) buf.resize(size_t(rows * cols));
  uint16_t* d = buf.data();
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && rows * cols >= (1 << 16))
  for (int64_t r = 0; r < rows; ++r) row_bf16(src + r * ld, cols, d + r * cols);
  return d;
}

}  // namespace

bool bf16_gemm_supported() {
  static const bool ok = __builtin_cpu_supports("avx512bf16") && cpu_isa() >= Isa::avx512vnni;
  return ok;
}

void require_bf16_gemm() {
  QT_CHECK(bf16_gemm_supported(),
           "--gemm bf16 needs a CPU with AVX512-BF16 instructions; this one has {} without them (use --gemm f32)",
           cpu_features());
}

void set_bf16_gemm(bool on) {
  if (on) require_bf16_gemm();
  g_bf16 = on;
}

bool bf16_gemm() { return g_bf16; }

Bf16Pin::Bf16Pin(const float* m, int64_t rows, int64_t cols) {
  if (!bf16_gemm()) return;
  std::vector<uint16_t> copy;
  to_bf16(m, rows, cols, cols, copy);
  g_pins.push_back({m, rows, cols, std::move(copy)});
  active_ = true;
}

Bf16Pin::~Bf16Pin() {
  if (active_) g_pins.pop_back();  // pins nest: the last made is the first dropped
}

void round_to_bf16(const float* src, int64_t rows, int64_t cols, int64_t ld, uint16_t* dst) {
  for (int64_t r = 0; r < rows; ++r) row_bf16(src + r * ld, cols, dst + r * cols);
}

void sgemm_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  QT_ASSERT(bf16_gemm_supported());
  thread_local std::vector<uint16_t> a16, b16;
  // stored shapes: A is [M, K] (or [K, M] transposed), B is [K, N] (or [N, K])
  const uint16_t* a_bf16 = to_bf16(A, ta ? K : M, ta ? M : K, lda, a16);
  const uint16_t* b_bf16 = to_bf16(B, tb ? N : K, tb ? K : N, ldb, b16);
  Library& lib = library();
  const Key key{ta, tb, M, N, K, ldc, alpha, beta};
  dnnl::matmul mm = primitive(lib, key);
  thread_local dnnl::stream stream(lib.engine);
  memory a(bf16_desc(M, K, ta), lib.engine, const_cast<uint16_t*>(a_bf16));
  memory b(bf16_desc(K, N, tb), lib.engine, const_cast<uint16_t*>(b_bf16));
  memory c(memory::desc({M, N}, memory::data_type::f32, memory::dims{ldc, 1}), lib.engine, C);
  mm.execute(stream, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
  stream.wait();
}

}  // namespace qtune::kernels
