// io/ggml_blocks.h — ggml tensor types and their block formats, as GGUF stores them.
//
// Block layouts (ggml-common.h), all little-endian, 32 elements per block:
//   Q8_0: fp16 d, int8 qs[32]                      x = d·q                      (34 bytes)
//   Q4_0: fp16 d, uint8 qs[16]                     x = d·(q − 8)                (18 bytes)
//   Q4_1: fp16 d, fp16 m, uint8 qs[16]             x = d·q + m                  (20 bytes)
// Nibble order: byte j holds element j in its low nibble and element j+16 in its high nibble.
// Quantizers follow ggml's reference ("_ref") quantizers so files match what llama.cpp's
// own tools would write bit for bit.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace qtune {

// ggml type ids as stored in GGUF tensor infos.
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q8_0 = 8,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  BF16 = 30,  // bfloat16: the upper half of a float32 (Hugging Face checkpoints, GGUF BF16)
};

struct GgmlTypeInfo {
  const char* name;    // "Q4_0"
  int64_t block_size;  // elements per block (1 for plain types)
  size_t type_size;    // bytes per block
};

// The plain integer types (qtune's exact layout of integer weights).
inline bool is_int_type(GgmlType t) { return t == GgmlType::I8 || t == GgmlType::I16 || t == GgmlType::I32; }
// True for the types qtune reads and writes (the ids listed in GgmlType).
bool ggml_type_supported(uint32_t id);
// Name for any ggml id, including ones qtune does not support (for error messages).
std::string ggml_type_name(uint32_t id);
const GgmlTypeInfo& ggml_type_info(GgmlType t);  // t must be supported
// Parses "F32", "f16", "q8_0", ... ; throws Error listing the accepted names.
GgmlType ggml_type_from_name(const std::string& name);
// Bytes for n elements (n must be a multiple of the block size).
size_t ggml_row_bytes(GgmlType t, int64_t n);

// IEEE half <-> float, round-to-nearest-even, subnormals, inf and nan handled.
uint16_t fp32_to_fp16(float f);
float fp16_to_fp32(uint16_t h);

constexpr int kQK = 32;  // elements per Q8_0 / Q4_0 / Q4_1 block

// x: [n] floats, n % 32 == 0 → n/32 blocks written to dst. Values must be finite.
void quantize_q8_0(const float* x, uint8_t* dst, int64_t n);
void quantize_q4_0(const float* x, uint8_t* dst, int64_t n);
void quantize_q4_1(const float* x, uint8_t* dst, int64_t n);
void dequantize_q8_0(const uint8_t* src, float* y, int64_t n);
void dequantize_q4_0(const uint8_t* src, float* y, int64_t n);
void dequantize_q4_1(const uint8_t* src, float* y, int64_t n);

// Any supported type: n floats → ggml_row_bytes(t, n) bytes and back. Integer types round to
// nearest and throw Error if a value does not fit.
void quantize_any(GgmlType t, const float* x, uint8_t* dst, int64_t n);
void dequantize_any(GgmlType t, const uint8_t* src, float* y, int64_t n);

}  // namespace qtune
