// io/gguf_int.h — integer weights (ModelFile::quantized) in GGUF, stored exactly.
//
// A weight W = Σ planes, plane value = scale[r, g]·(code − offset[r, g]) (quant/quant.h), is
// written in one of two layouts, both re-read bit for bit by qtune (the writer decodes what it
// wrote and compares every dequantized row before it commits):
//
// 1. ggml block types, which llama.cpp runs (one plane, row length a multiple of 32, group 0 or a
//    multiple of 32):
//      bits ≤ 4 asymmetric                → Q4_1  d = fp16(scale), m = fp16(−(scale·zero)), q = code
//      bits ≤ 4 symmetric                 → Q4_0  d = fp16(scale), q = code − 2^(b−1) + 8
//      values k·(code − offset) in int8   → Q8_0  d = fp16(scale / k), q = k·(code − offset)
//    (k = 2 when some offset is a half-integer — the zero-free grid — else 1). llama.cpp reads the
//    fp16 d/m; qtune reads the exact float32 values from
//      qtune.exact_scale.<name>  f32[rows·G]   scale (Q8_0: scale / k) of group g of row r at [r·G + g]
//      qtune.exact_zero.<name>   f32[rows·G]   Q4_1 only: the zero point
//    where G = cols / (elements per entry): 1 for a per-row weight, else cols/group (or cols/32).
//    The reader checks fp16(exact) == the block's d (and m), so a file re-quantized by another
//    tool is caught rather than silently mis-read. Without the keys (llama.cpp's own files) a block
//    loads as group 32: Q8_0 → 8-bit symmetric, Q4_0 → 4-bit symmetric, Q4_1 → 4-bit asymmetric with
//    zero = −m/d; a weight whose groups all agree within each row collapses to per-row.
// 2. qtune's exact layout, for everything else:
//      <name>          I8 / I16 / I32 [out, in]   v = k·(code − offset), the narrowest type that holds it
//      <stem>.scale    F32 [out, groups]          scale / k   (stem = name without ".weight")
//      qtune.group_size.<name>  u32               only when groups > 1
//    I8 → 8-bit symmetric, I16 → 16-bit symmetric, I32 → planes_from_integers (per-row scales; this
//    is how a multi-plane weight is stored: integers_from_planes → one I32 tensor).
// Anything that cannot be stored exactly (a non-integral, non-half-integral offset outside Q4_1,
// planes integers_from_planes does not accept, 17-bit values with group scales) is an Error.
#pragma once
#include <string>
#include <vector>

#include "io/ggml_blocks.h"
#include "io/projections.h"
#include "quant/quant.h"

namespace qtune {

class GgufFile;
class GgufWriter;
struct GgufTensorInfo;

// Metadata key and tensor names of the layouts above.
std::string exact_scale_key(const std::string& name);  // "qtune.exact_scale.<name>"
std::string exact_zero_key(const std::string& name);   // "qtune.exact_zero.<name>"
std::string group_size_key(const std::string& name);   // "qtune.group_size.<name>"
std::string scale_tensor_name(const std::string& name);  // "<stem>.scale"

// The fp16 rounding of a block scale larger than this (relative) is not accepted for llama.cpp:
// the weight goes to the exact layout instead (docs/DESIGN.md §6.3).
constexpr double kMaxFp16ScaleError = 1e-3;

// How one integer weight was written.
struct GgufIntReport {
  std::string name;
  GgmlType type = GgmlType::I8;
  int planes = 1;
  std::string not_block;           // why no block type ("" when it is one), e.g. "values need 9 bits"
  double fp16_scale_err = 0;       // max over blocks |fp16(d) − d| / |d|
  double fp16_min_err = 0;         // Q4_1: max |fp16(m) − m| / (|d|·(2^bits − 1))
  double llamacpp_weight_err = 0;  // max over rows of max|w_llama.cpp − w| / max|w|; 0 for exact layouts
};

// Adds the tensor(s) and keys of weight `name` to w. `path` names the output file in errors.
GgufIntReport add_int_weight(GgufWriter& w, const std::string& path, const std::string& name,
                             const std::vector<QuantMatrix>& planes);

// True when a projection stored as type t loads into ModelFile::quantized.
bool is_int_weight_type(GgmlType t);
// Reads projection t (is_int_weight_type) with its .scale tensor / exact keys; validates all of it.
std::vector<QuantMatrix> read_int_weight(const GgufFile& f, const GgufTensorInfo& t);
// Every ".scale" tensor and qtune.exact_* / qtune.group_size.* key must belong to an integer weight
// in `int_names` (with the matching layout); throws Error naming the file and the tensor/key.
void check_int_extras(const GgufFile& f, const std::vector<std::string>& int_names);

// ---- shared by the reader and the writer's self-check --------------------------------------
// One integer weight as it lies in a file (or is about to), not yet trusted.
struct StoredIntWeight {
  std::string file, name;
  GgmlType type = GgmlType::I8;
  int64_t rows = 0, cols = 0;
  const uint8_t* data = nullptr;  // rows · ggml_row_bytes(type, cols) bytes
  // exact layout: the .scale tensor [rows, scale_cols] and the qtune.group_size value (0 = absent)
  const float* scale = nullptr;
  int64_t scale_cols = 0;
  int64_t group_size = 0;
  // block layout: the qtune.exact_* arrays (null when absent)
  const std::vector<float>* exact_scale = nullptr;
  const std::vector<float>* exact_zero = nullptr;
};
// Validates and decodes; throws Error naming s.file and s.name.
std::vector<QuantMatrix> decode_int_weight(const StoredIntWeight& s);
// Q4_1's m for scale s and zero point z, as the writer stores it and the reader checks it.
inline float q4_1_min(float s, float z) { return -(s * z); }

}  // namespace qtune
