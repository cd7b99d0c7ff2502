#include "io/ggml_blocks.h"

#include <algorithm>
#include <cctype>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "quant/bf16.h"

namespace qtune {

namespace {

const GgmlTypeInfo kF32{"F32", 1, 4}, kF16{"F16", 1, 2}, kQ4_0{"Q4_0", kQK, 18}, kQ4_1{"Q4_1", kQK, 20},
    kQ8_0{"Q8_0", kQK, 34}, kI8{"I8", 1, 1}, kI16{"I16", 1, 2}, kI32{"I32", 1, 4}, kBF16{"BF16", 1, 2};

const GgmlType kAll[] = {GgmlType::F32, GgmlType::F16, GgmlType::Q4_0, GgmlType::Q4_1,
                         GgmlType::Q8_0, GgmlType::I8, GgmlType::I16, GgmlType::I32, GgmlType::BF16};

uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float bits_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
void put_f16(uint8_t* p, float f) {
  uint16_t h = fp32_to_fp16(f);
  p[0] = uint8_t(h & 0xff);
  p[1] = uint8_t(h >> 8);
}
float get_f16(const uint8_t* p) { return fp16_to_fp32(uint16_t(p[0] | (p[1] << 8))); }

// Rounds mantissa bits away below `shift` with round-to-nearest-even.
uint32_t round_shift_rne(uint32_t m, int shift) {
  uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1))) q++;
  return q;
}

template <class T>
void quantize_int(const float* x, uint8_t* dst, int64_t n, double lo, double hi, const char* name) {
  for (int64_t i = 0; i < n; i++) {
    double v = std::nearbyint(double(x[i]));
    QT_CHECK(std::isfinite(x[i]) && v >= lo && v <= hi, "value {} at index {} does not fit in {}", x[i], i,
             name);
    T q = static_cast<T>(v);
    std::memcpy(dst + i * sizeof(T), &q, sizeof(T));
  }
}
template <class T>
void dequantize_int(const uint8_t* src, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    T q;
    std::memcpy(&q, src + i * sizeof(T), sizeof(T));
    y[i] = float(q);
  }
}

// 1/d, or 0 where d is 0 or so small that 1/d overflows (x·inf would be nan; ggml leaves that undefined).
float safe_inv(float d) {
  float id = d != 0.0f ? 1.0f / d : 0.0f;
  return std::isfinite(id) ? id : 0.0f;
}

void check_finite(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    QT_CHECK(std::isfinite(x[i]), "cannot quantize a non-finite value ({}) at index {}", x[i], i);
}

}  // namespace

bool ggml_type_supported(uint32_t id) {
  for (auto t : kAll)
    if (uint32_t(t) == id) return true;
  return false;
}

std::string ggml_type_name(uint32_t id) {
  if (ggml_type_supported(id)) return ggml_type_info(GgmlType(id)).name;
  // Other ggml ids, named so that "unsupported type Q4_K" is understandable.
  static const char* other[] = {nullptr, nullptr, nullptr, nullptr, "Q4_2", "Q4_3", "Q5_0", "Q5_1", nullptr,
                                "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS",
                                "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", nullptr, nullptr,
                                nullptr, "I64", "F64", "IQ1_M", "BF16"};
  if (id < std::size(other) && other[id]) return other[id];
  return fmt::format("type#{}", id);
}

const GgmlTypeInfo& ggml_type_info(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return kF32;
    case GgmlType::F16: return kF16;
    case GgmlType::Q4_0: return kQ4_0;
    case GgmlType::Q4_1: return kQ4_1;
    case GgmlType::Q8_0: return kQ8_0;
    case GgmlType::I8: return kI8;
    case GgmlType::I16: return kI16;
    case GgmlType::I32: return kI32;
    case GgmlType::BF16: return kBF16;
  }
  QT_ASSERT(false);
  return kF32;
}

GgmlType ggml_type_from_name(const std::string& name) {
  std::string up = name;
  for (auto& c : up) c = char(std::toupper(static_cast<unsigned char>(c)));
  for (auto t : kAll)
    if (up == ggml_type_info(t).name) return t;
  fail("unknown tensor type '{}' (expected one of F32, F16, BF16, Q8_0, Q4_0, Q4_1, I8, I16, I32)", name);
}

size_t ggml_row_bytes(GgmlType t, int64_t n) {
  const auto& info = ggml_type_info(t);
  QT_ASSERT(n >= 0 && n % info.block_size == 0);
  return size_t(n / info.block_size) * info.type_size;
}

uint16_t fp32_to_fp16(float f) {
  uint32_t x = f32_bits(f);
  uint32_t sign = (x >> 16) & 0x8000, mant = x & 0x7fffff;
  int exp = int((x >> 23) & 0xff);
  if (exp == 255) return uint16_t(sign | 0x7c00 | (mant ? 0x200 | (mant >> 13) : 0));  // inf / quiet nan
  int e = exp - 127 + 15;                                                                // half exponent
  if (e >= 31) return uint16_t(sign | 0x7c00);                                           // overflow → inf
  if (e <= 0) {
    // Half subnormal: value = q·2^-24, q = (1.mant)·2^(e−1+14)… i.e. the 24-bit significand >> (14 − e).
    if (e < -10) return uint16_t(sign);  // below half of the smallest subnormal → ±0
    return uint16_t(sign | round_shift_rne(mant | 0x800000, 14 - e));
  }
  // Normal: a carry out of the mantissa correctly bumps the exponent (up to inf).
  return uint16_t(sign | ((uint32_t(e) << 10) + round_shift_rne(mant, 13)));
}

float fp16_to_fp32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp == 0) {
    float v = std::ldexp(float(mant), -24);  // zero or subnormal, exact
    return sign ? -v : v;
  }
  if (exp == 31) return bits_f32(sign | 0x7f800000 | (mant << 13));
  return bits_f32(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

void quantize_q8_0(const float* x, uint8_t* dst, int64_t n) {
  QT_ASSERT(n % kQK == 0);
  check_finite(x, n);
  for (int64_t b = 0; b < n / kQK; b++, x += kQK, dst += 34) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; j++) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = safe_inv(d);  // scale with the float d, store the fp16 d (as ggml)
    put_f16(dst, d);
    for (int j = 0; j < kQK; j++) dst[2 + j] = uint8_t(int8_t(std::roundf(x[j] * id)));
  }
}

void quantize_q4_0(const float* x, uint8_t* dst, int64_t n) {
  QT_ASSERT(n % kQK == 0);
  check_finite(x, n);
  for (int64_t b = 0; b < n / kQK; b++, x += kQK, dst += 18) {
    // d = (signed value of largest magnitude) / −8, so that value maps exactly to q = 0.
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK; j++)
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    const float d = max / -8.0f;
    const float id = safe_inv(d);
    put_f16(dst, d);
    for (int j = 0; j < kQK / 2; j++) {
      uint8_t q0 = uint8_t(std::min(15, int(int8_t(x[j] * id + 8.5f))));
      uint8_t q1 = uint8_t(std::min(15, int(int8_t(x[j + kQK / 2] * id + 8.5f))));
      dst[2 + j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

void quantize_q4_1(const float* x, uint8_t* dst, int64_t n) {
  QT_ASSERT(n % kQK == 0);
  check_finite(x, n);
  for (int64_t b = 0; b < n / kQK; b++, x += kQK, dst += 20) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < kQK; j++) {
      min = std::min(min, x[j]);
      max = std::max(max, x[j]);
    }
    const float d = (max - min) / 15.0f;
    const float id = safe_inv(d);
    put_f16(dst, d);
    put_f16(dst + 2, min);
    for (int j = 0; j < kQK / 2; j++) {
      uint8_t q0 = uint8_t(std::min(15, int(int8_t((x[j] - min) * id + 0.5f))));
      uint8_t q1 = uint8_t(std::min(15, int(int8_t((x[j + kQK / 2] - min) * id + 0.5f))));
      dst[4 + j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

void dequantize_q8_0(const uint8_t* src, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; b++, src += 34, y += kQK) {
    const float d = get_f16(src);
    for (int j = 0; j < kQK; j++) y[j] = float(int8_t(src[2 + j])) * d;
  }
}

void dequantize_q4_0(const uint8_t* src, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; b++, src += 18, y += kQK) {
    const float d = get_f16(src);
    for (int j = 0; j < kQK / 2; j++) {
      y[j] = float((src[2 + j] & 0x0f) - 8) * d;
      y[j + kQK / 2] = float((src[2 + j] >> 4) - 8) * d;
    }
  }
}

void dequantize_q4_1(const uint8_t* src, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; b++, src += 20, y += kQK) {
    const float d = get_f16(src), m = get_f16(src + 2);
    for (int j = 0; j < kQK / 2; j++) {
      y[j] = float(src[4 + j] & 0x0f) * d + m;
      y[j + kQK / 2] = float(src[4 + j] >> 4) * d + m;
    }
  }
}

void quantize_any(GgmlType t, const float* x, uint8_t* dst, int64_t n) {
  switch (t) {
    case GgmlType::F32: std::memcpy(dst, x, size_t(n) * 4); return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; i++) put_f16(dst + 2 * i, x[i]);
      return;
    case GgmlType::Q4_0: quantize_q4_0(x, dst, n); return;
    case GgmlType::Q4_1: quantize_q4_1(x, dst, n); return;
    case GgmlType::Q8_0: quantize_q8_0(x, dst, n); return;
    case GgmlType::I8: quantize_int<int8_t>(x, dst, n, -128, 127, "I8"); return;
    case GgmlType::I16: quantize_int<int16_t>(x, dst, n, -32768, 32767, "I16"); return;
    case GgmlType::I32: quantize_int<int32_t>(x, dst, n, -2147483648.0, 2147483647.0, "I32"); return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; i++) {
        const uint16_t h = fp32_to_bf16(x[i]);
        dst[2 * i] = uint8_t(h & 0xff);
        dst[2 * i + 1] = uint8_t(h >> 8);
      }
      return;
  }
  QT_ASSERT(false);
}

void dequantize_any(GgmlType t, const uint8_t* src, float* y, int64_t n) {
  switch (t) {
    case GgmlType::F32: std::memcpy(y, src, size_t(n) * 4); return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; i++) y[i] = get_f16(src + 2 * i);
      return;
    case GgmlType::Q4_0: dequantize_q4_0(src, y, n); return;
    case GgmlType::Q4_1: dequantize_q4_1(src, y, n); return;
    case GgmlType::Q8_0: dequantize_q8_0(src, y, n); return;
    case GgmlType::I8: dequantize_int<int8_t>(src, y, n); return;
    case GgmlType::I16: dequantize_int<int16_t>(src, y, n); return;
    case GgmlType::I32: dequantize_int<int32_t>(src, y, n); return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; i++) y[i] = bf16_to_fp32(uint16_t(src[2 * i] | (src[2 * i + 1] << 8)));
      return;
  }
  QT_ASSERT(false);
}

}  // namespace qtune
