// ggml block formats and fp16: layouts checked byte by byte on hand-made blocks, error bounds
// on random data, fp16 against the compiler's own _Float16 conversion.
#include <cmath>
#include <cstring>
#include <random>

#include "core/error.h"
#include "io/ggml_blocks.h"
#include "test_util.h"

namespace qtune {
namespace {

uint16_t u16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }

TEST(Fp16, KnownValuesAndRounding) {
  EXPECT_EQ(fp32_to_fp16(1.0f), 0x3c00);
  EXPECT_EQ(fp32_to_fp16(-2.0f), 0xc000);
  EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7bff);                  // largest half
  EXPECT_EQ(fp32_to_fp16(65519.0f), 0x7bff);                  // below the midpoint to inf
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00);                  // midpoint, ties to even → inf
  EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie → even (down)
  EXPECT_EQ(fp32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie → even (up)
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);     // smallest subnormal
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);     // tie → even (zero)
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1023.0f, -24)), 0x03ff);  // largest subnormal
  EXPECT_EQ(fp32_to_fp16(INFINITY), 0x7c00);
  EXPECT_EQ(fp32_to_fp16(-INFINITY), 0xfc00);
  uint16_t nan = fp32_to_fp16(NAN);
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
  EXPECT_TRUE(std::isnan(fp16_to_fp32(nan)));
  EXPECT_EQ(fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(fp16_to_fp32(0x7bff), 65504.0f);
  EXPECT_EQ(fp16_to_fp32(0xfc00), -INFINITY);
}

TEST(Fp16, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h < 65536; h++) {
    float f = fp16_to_fp32(uint16_t(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(fp32_to_fp16(f), h) << "half 0x" << std::hex << h;
  }
}

#if defined(__FLT16_MAX__)
TEST(Fp16, MatchesCompilerFloat16) {
  std::mt19937 g(7);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 200000; i++) {
    uint32_t u = bits(g);
    float f;
    std::memcpy(&f, &u, 4);
    if (std::isnan(f)) continue;
    _Float16 ref = static_cast<_Float16>(f);
    uint16_t rb;
    std::memcpy(&rb, &ref, 2);
    ASSERT_EQ(fp32_to_fp16(f), rb) << f;
    ASSERT_EQ(fp16_to_fp32(rb), float(ref));
  }
}
#endif

TEST(GgmlBlocks, Q4_0LayoutByHand) {
  float x[32];
  for (int j = 0; j < 32; j++) x[j] = float(j - 16);  // largest magnitude −16 → d = −16/−8 = 2
  uint8_t b[18];
  quantize_q4_0(x, b, 32);
  EXPECT_EQ(u16(b), 0x4000);  // fp16(2.0)
  // byte j: element j (low nibble), element j+16 (high nibble); q = round(x/2) + 8, ≤ 15
  for (int j = 0; j < 16; j++) {
    int q0 = std::min(15, int(std::floor(x[j] / 2 + 8.5f))), q1 = std::min(15, int(std::floor(x[j + 16] / 2 + 8.5f)));
    EXPECT_EQ(b[2 + j], q0 | (q1 << 4)) << j;
  }
  EXPECT_EQ(b[2], 0x80);  // element 0 → q 0, element 16 (x = 0) → q 8
  float y[32];
  dequantize_q4_0(b, y, 32);
  for (int j = 0; j < 32; j++) EXPECT_EQ(y[j], 2.0f * float((j < 16 ? b[2 + j] & 15 : b[2 + j - 16] >> 4) - 8));
}

TEST(GgmlBlocks, Q4_1AndQ8_0LayoutByHand) {
  float x[32];
  for (int j = 0; j < 32; j++) x[j] = 1.0f + 0.5f * float(j);  // min 1, max 16.5 → d = 15.5/15
  uint8_t b[20];
  quantize_q4_1(x, b, 32);
  EXPECT_EQ(u16(b), fp32_to_fp16(15.5f / 15.0f));
  EXPECT_EQ(u16(b + 2), fp32_to_fp16(1.0f));
  EXPECT_EQ(b[4] & 15, 0);        // element 0 is the minimum
  EXPECT_EQ(b[4 + 15] >> 4, 15);  // element 31 is the maximum
  float y[32];
  dequantize_q4_1(b, y, 32);
  for (int j = 0; j < 32; j++) EXPECT_NEAR(y[j], x[j], 0.5f * 15.5f / 15.0f + 1e-3f);

  for (int j = 0; j < 32; j++) x[j] = (j % 2 ? -1.0f : 1.0f) * float(j);  // amax 31 → d = 31/127
  uint8_t c[34];
  quantize_q8_0(x, c, 32);
  EXPECT_EQ(u16(c), fp32_to_fp16(31.0f / 127.0f));
  EXPECT_EQ(int8_t(c[2 + 31]), -127);
  EXPECT_EQ(int8_t(c[2 + 0]), 0);
  EXPECT_EQ(int8_t(c[2 + 4]), int8_t(std::round(4.0f * 127.0f / 31.0f)));
}

TEST(GgmlBlocks, RandomErrorBounds) {
  std::mt19937 g(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int n = 32 * 64;
  std::vector<float> x(n), y(n);
  for (auto& v : x) v = nd(g);
  for (GgmlType t : {GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1}) {
    std::vector<uint8_t> q(ggml_row_bytes(t, n));
    quantize_any(t, x.data(), q.data(), n);
    dequantize_any(t, q.data(), y.data(), n);
    for (int b = 0; b < n / 32; b++) {
      float lo = x[b * 32], hi = lo, amax = 0;
      for (int j = 0; j < 32; j++) {
        lo = std::min(lo, x[b * 32 + j]);
        hi = std::max(hi, x[b * 32 + j]);
        amax = std::max(amax, std::fabs(x[b * 32 + j]));
      }
      // One quantization step (half a step for round-to-nearest) plus fp16 scale rounding.
      float bound = t == GgmlType::F16    ? amax * 1e-3f
                    : t == GgmlType::Q8_0 ? amax / 127 * 0.5f + amax * 2e-3f
                    : t == GgmlType::Q4_0 ? amax / 8 * 1.0f + amax * 2e-3f
                                          : (hi - lo) / 15 * 0.5f + amax * 2e-3f;
      for (int j = 0; j < 32; j++)
        ASSERT_LE(std::fabs(y[b * 32 + j] - x[b * 32 + j]), bound) << ggml_type_info(t).name << " block " << b;
    }
    double e = test::rel_err(y.data(), x.data(), n);
    EXPECT_LT(e, t == GgmlType::Q4_0 || t == GgmlType::Q4_1 ? 0.15 : 0.01) << ggml_type_info(t).name;
    EXPECT_GT(e, 0.0) << ggml_type_info(t).name;
  }
}

TEST(GgmlBlocks, ZeroBlockAndIntegerTypes) {
  float z[32] = {};
  uint8_t b[20];
  float y[32];
  quantize_q4_0(z, b, 32);
  dequantize_q4_0(b, y, 32);
  for (float v : y) EXPECT_EQ(v, 0.0f);
  float ints[4] = {-128, 127, 3.4f, -0.6f};
  uint8_t i8[4];
  quantize_any(GgmlType::I8, ints, i8, 4);
  float back[4];
  dequantize_any(GgmlType::I8, i8, back, 4);
  EXPECT_EQ(back[0], -128);
  EXPECT_EQ(back[1], 127);
  EXPECT_EQ(back[2], 3);
  EXPECT_EQ(back[3], -1);
  float big = 128.0f;
  EXPECT_THROW(quantize_any(GgmlType::I8, &big, i8, 1), Error);
  float inf[32] = {INFINITY};
  EXPECT_THROW(quantize_q8_0(inf, b, 32), Error);
  EXPECT_EQ(ggml_type_from_name("q4_1"), GgmlType::Q4_1);
  EXPECT_THROW(ggml_type_from_name("Q5_K"), Error);
  EXPECT_EQ(ggml_type_name(12), "Q4_K");
}

}  // namespace
}  // namespace qtune
