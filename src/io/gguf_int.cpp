// io/gguf_int.cpp — reading integer weights from GGUF (layouts: gguf_int.h). The writer is
// gguf_int_write.cpp; it decodes what it is about to write with decode_int_weight below.
#include "io/gguf_int.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "io/gguf.h"
#include "quant/int_planes.h"

namespace qtune {

namespace {

const std::string kExactScale = "qtune.exact_scale.", kExactZero = "qtune.exact_zero.",
                  kGroupSize = "qtune.group_size.", kWeight = ".weight", kScale = ".scale";

std::string stem_of(const std::string& name) {
  return name.ends_with(kWeight) ? name.substr(0, name.size() - kWeight.size()) : name;
}

uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
uint16_t get_u16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }

bool is_block(GgmlType t) { return t == GgmlType::Q8_0 || t == GgmlType::Q4_0 || t == GgmlType::Q4_1; }

// Checks a qtune.exact_* array: G entries per row with cols/G a multiple of 32; returns G.
int64_t exact_entries_per_row(const StoredIntWeight& s, const std::vector<float>& a, const std::string& key,
                              bool positive) {
  const int64_t n = int64_t(a.size()), nb = s.cols / kQK;
  const int64_t G = n / s.rows;
  QT_CHECK(n > 0 && n % s.rows == 0 && nb % G == 0,
           "{}: key '{}': {} values, expected rows·G = {}·G with G dividing the {} blocks of a row", s.file, key, n,
           s.rows, nb);
  for (int64_t i = 0; i < n; i++)
    QT_CHECK(std::isfinite(a[i]) && (!positive || a[i] > 0), "{}: key '{}': value [{}] = {} must be {}", s.file, key,
             i, a[i], positive ? "finite and positive" : "finite");
  return G;
}

// Same scale and offset (bit for bit) in every group of each row → one group per row: the codes
// keep their layout and every element keeps its scale and offset, so the values do not change.
void collapse_per_row(QuantMatrix& q) {
  const int64_t ng = q.groups_per_row();
  if (ng == 1 && q.spec.group == 0) return;
  for (int64_t r = 0; r < q.rows; r++)
    for (int64_t g = 1; g < ng; g++)
      if (f32_bits(q.scale[r * ng + g]) != f32_bits(q.scale[r * ng]) ||
          f32_bits(q.zero[r * ng + g]) != f32_bits(q.zero[r * ng]))
        return;
  Buffer<float> scale(size_t(q.rows)), zero(size_t(q.rows));
  for (int64_t r = 0; r < q.rows; r++) {
    scale[r] = q.scale[r * ng];
    zero[r] = q.zero[r * ng];
  }
  q.spec.group = 0;
  q.scale = std::move(scale);
  q.zero = std::move(zero);
}

// Scale and zero of one block: the exact keys (checked against the block's fp16 d and m) or,
// for llama.cpp's own files, d and −m/d.
void block_params(const StoredIntWeight& s, int64_t r, int64_t b, int64_t G, const uint8_t* blk, float* scale,
                  float* zero, bool* zero_block) {
  const uint16_t dh = get_u16(blk), mh = s.type == GgmlType::Q4_1 ? get_u16(blk + 2) : 0;
  const float d = fp16_to_fp32(dh), m = fp16_to_fp32(mh);
  QT_CHECK(std::isfinite(d) && std::isfinite(m), "{}: tensor '{}': row {}, block {}: d = {}, m = {} is not finite",
           s.file, s.name, r, b, d, m);
  *zero_block = false;
  *zero = 0;
  if (s.exact_scale) {
    const int64_t i = r * G + b / (s.cols / kQK / G);
    *scale = (*s.exact_scale)[i];
    QT_CHECK(fp32_to_fp16(*scale) == dh,
             "{}: key '{}': value [{}] = {} does not round to the fp16 d = {} of row {}, block {} (was the tensor "
             "re-quantized by another tool?)",
             s.file, exact_scale_key(s.name), i, *scale, d, r, b);
    if (s.type != GgmlType::Q4_1) return;
    *zero = (*s.exact_zero)[i];
    QT_CHECK(fp32_to_fp16(q4_1_min(*scale, *zero)) == mh,
             "{}: key '{}': value [{}] = {} does not give the fp16 m = {} of row {}, block {}", s.file,
             exact_zero_key(s.name), i, *zero, m, r, b);
    return;
  }
  if (d == 0) {  // every element is m (Q4_1) or 0: store that with unit scale
    *zero_block = true;
    *scale = 1.0f;
    *zero = s.type == GgmlType::Q4_1 ? -m : 0.0f;
    return;
  }
  *scale = d;
  if (s.type == GgmlType::Q4_1) {
    *zero = -m / d;
    QT_CHECK(std::isfinite(*zero), "{}: tensor '{}': row {}, block {}: zero point −m/d = {} is not finite", s.file,
             s.name, r, b, *zero);
  }
}

std::vector<QuantMatrix> decode_blocks(const StoredIntWeight& s) {
  int64_t G = 0;
  if (s.exact_scale) G = exact_entries_per_row(s, *s.exact_scale, exact_scale_key(s.name), true);
  if (s.type == GgmlType::Q4_1 && s.exact_scale) {
    QT_CHECK(s.exact_zero, "{}: key '{}': missing (Q4_1 weight '{}' has exact scales but no exact zero points)",
             s.file, exact_zero_key(s.name), s.name);
    QT_CHECK(exact_entries_per_row(s, *s.exact_zero, exact_zero_key(s.name), false) == G &&
                 s.exact_zero->size() == s.exact_scale->size(),
             "{}: key '{}': {} values, but '{}' has {}", s.file, exact_zero_key(s.name), s.exact_zero->size(),
             exact_scale_key(s.name), s.exact_scale->size());
  } else {
    QT_CHECK(!s.exact_zero, "{}: key '{}': exact zero points belong to Q4_1 weights with exact scales, not {}",
             s.file, exact_zero_key(s.name), s.exact_scale ? ggml_type_info(s.type).name : "a weight without them");
  }
  QuantSpec spec;
  spec.bits = s.type == GgmlType::Q8_0 ? 8 : 4;
  spec.symmetric = s.type != GgmlType::Q4_1;
  spec.group = kQK;
  QuantMatrix q = empty_quant_matrix(s.rows, s.cols, spec);
  const int64_t nb = s.cols / kQK, ng = q.groups_per_row(), rb = q.row_bytes();
  const size_t bsz = ggml_type_info(s.type).type_size;
  for (int64_t r = 0; r < s.rows; r++) {
    uint8_t* row = q.codes.data() + r * rb;
    for (int64_t b = 0; b < nb; b++) {
      const uint8_t* blk = s.data + size_t(r * nb + b) * bsz;
      bool zero_block;
      block_params(s, r, b, G, blk, &q.scale[r * ng + b], &q.zero[r * ng + b], &zero_block);
      uint8_t code[kQK];
      if (s.type == GgmlType::Q8_0) {
        for (int j = 0; j < kQK; j++) code[j] = uint8_t(blk[2 + j] ^ 0x80);  // int8 q → q + 128
      } else {
        const uint8_t* qs = blk + (s.type == GgmlType::Q4_1 ? 4 : 2);
        for (int j = 0; j < kQK / 2; j++) {  // ggml: byte j = element j (low), element j+16 (high)
          code[j] = qs[j] & 0x0f;
          code[j + kQK / 2] = qs[j] >> 4;
        }
      }
      if (zero_block)
        for (auto& c : code) c = spec.symmetric ? uint8_t(1 << (spec.bits - 1)) : 0;
      if (spec.bits == 8)
        std::memcpy(row + b * kQK, code, kQK);
      else  // qtune: byte i = columns 2i (low nibble) and 2i+1 (high)
        for (int i = 0; i < kQK / 2; i++) row[b * kQK / 2 + i] = uint8_t(code[2 * i] | (code[2 * i + 1] << 4));
    }
  }
  collapse_per_row(q);
  std::vector<QuantMatrix> planes;
  planes.push_back(std::move(q));
  return planes;
}

std::vector<QuantMatrix> decode_exact(const StoredIntWeight& s) {
  QT_CHECK(s.scale, "{}: tensor '{}': missing ({} weight '{}' needs its scales)", s.file, scale_tensor_name(s.name),
           ggml_type_info(s.type).name, s.name);
  const int64_t groups = s.group_size > 0 ? (s.cols + s.group_size - 1) / s.group_size : 1;
  QT_CHECK(s.scale_cols == groups, "{}: tensor '{}': {} scales per row, expected {} ({} columns, group size {})",
           s.file, scale_tensor_name(s.name), s.scale_cols, groups, s.cols, s.group_size ? s.group_size : s.cols);
  for (int64_t i = 0; i < s.rows * groups; i++) {
    float v;
    std::memcpy(&v, s.scale + i, 4);
    QT_CHECK(std::isfinite(v) && v > 0, "{}: tensor '{}': scale [{}, {}] = {} must be finite and positive", s.file,
             scale_tensor_name(s.name), i / groups, i % groups, v);
  }
  std::vector<QuantMatrix> planes;
  if (s.type == GgmlType::I32) {
    QT_CHECK(groups == 1, "{}: key '{}': I32 weight '{}' has one scale per row, not groups", s.file,
             group_size_key(s.name), s.name);
    std::vector<int32_t> v(size_t(s.rows * s.cols));
    std::memcpy(v.data(), s.data, v.size() * 4);
    std::vector<float> scale(size_t(s.rows));
    std::memcpy(scale.data(), s.scale, scale.size() * 4);
    try {
      planes = planes_from_integers(v.data(), scale.data(), s.rows, s.cols);
    } catch (const Error& e) {
      fail("{}: tensor '{}': {}", s.file, s.name, e.what());
    }
    return planes;
  }
  QuantSpec spec;
  spec.bits = s.type == GgmlType::I8 ? 8 : 16;
  spec.symmetric = true;
  spec.group = groups > 1 ? int(s.group_size) : 0;
  QuantMatrix q = empty_quant_matrix(s.rows, s.cols, spec);
  std::memcpy(q.scale.data(), s.scale, size_t(s.rows * groups) * 4);
  // Signed two's complement → the symmetric code v + 2^(b−1): flip the sign bit (little-endian).
  const size_t n = size_t(s.rows * q.row_bytes());
  for (size_t i = 0; i < n; i++) {
    const bool top = spec.bits == 8 || (i & 1);
    q.codes[i] = uint8_t(top ? s.data[i] ^ 0x80 : s.data[i]);
  }
  planes.push_back(narrowest_codes(q));  // e.g. a 4-bit QA-LoRA weight stays 4-bit in memory
  return planes;
}

}  // namespace

std::string exact_scale_key(const std::string& name) { return kExactScale + name; }
std::string exact_zero_key(const std::string& name) { return kExactZero + name; }
std::string group_size_key(const std::string& name) { return kGroupSize + name; }
std::string scale_tensor_name(const std::string& name) { return stem_of(name) + kScale; }

bool is_int_weight_type(GgmlType t) { return is_block(t) || is_int_type(t); }

std::vector<QuantMatrix> decode_int_weight(const StoredIntWeight& s) {
  QT_ASSERT(is_int_weight_type(s.type) && s.rows > 0 && s.cols > 0);
  return is_block(s.type) ? decode_blocks(s) : decode_exact(s);
}

std::vector<QuantMatrix> read_int_weight(const GgufFile& f, const GgufTensorInfo& t) {
  QT_CHECK(t.ne.size() == 2, "{}: tensor '{}': an integer weight must be 2-D, found {} dims", f.path(), t.name,
           t.ne.size());
  StoredIntWeight s;
  s.file = f.path();
  s.name = t.name;
  s.type = t.type;
  s.cols = t.ne[0];
  s.rows = t.ne[1];
  s.data = t.data;
  std::vector<float> exact_scale, exact_zero;
  Tensor scale;
  if (is_block(t.type)) {
    if (f.has(exact_scale_key(t.name))) {
      exact_scale = f.get_arr_f32(exact_scale_key(t.name));
      s.exact_scale = &exact_scale;
    }
    if (f.has(exact_zero_key(t.name))) {
      exact_zero = f.get_arr_f32(exact_zero_key(t.name));
      s.exact_zero = &exact_zero;
    }
  } else if (const GgufTensorInfo* st = f.find_tensor(scale_tensor_name(t.name))) {
    QT_CHECK(st->type == GgmlType::F32 && st->ne.size() == 2 && st->ne[1] == s.rows,
             "{}: tensor '{}': expected F32 [{}, groups] for the scales of '{}', found {} {}", f.path(), st->name,
             s.rows, t.name, ggml_type_info(st->type).name, shape_str(st->shape()));
    scale = f.to_float(*st);  // a copy: the mapping's floats need not be 4-byte aligned
    s.scale = scale.ptr();
    s.scale_cols = st->ne[0];
    if (f.has(group_size_key(t.name))) {
      s.group_size = f.get_u32(group_size_key(t.name));
      QT_CHECK(s.group_size > 0, "{}: key '{}': group size must be positive", f.path(), group_size_key(t.name));
    }
  }
  return decode_int_weight(s);
}

void check_int_extras(const GgufFile& f, const std::vector<std::string>& int_names) {
  auto type_of = [&](const std::string& name) -> const GgufTensorInfo* {
    for (const auto& n : int_names)
      if (n == name) return f.find_tensor(n);
    return nullptr;
  };
  for (const auto& t : f.tensors()) {
    if (!t.name.ends_with(kScale)) continue;
    const std::string target = t.name.substr(0, t.name.size() - kScale.size()) + kWeight;
    const GgufTensorInfo* w = type_of(target);
    QT_CHECK(w && is_int_type(w->type),
             "{}: tensor '{}': a scale tensor, but '{}' is not an I8/I16/I32 weight of the model (found {})", f.path(),
             t.name, target, w ? ggml_type_info(w->type).name : f.find_tensor(target) ? "a float tensor" : "nothing");
  }
  for (const auto& [key, v] : f.metadata()) {
    const bool exact = key.starts_with(kExactScale) || key.starts_with(kExactZero);
    if (!exact && !key.starts_with(kGroupSize)) continue;
    const std::string target = key.substr(key.find('.', 6) + 1);
    const GgufTensorInfo* w = type_of(target);
    const bool ok = w && (exact ? is_block(w->type) : w->type == GgmlType::I8 || w->type == GgmlType::I16);
    QT_CHECK(ok, "{}: key '{}': '{}' is not {} weight of the model", f.path(), excerpt(key), excerpt(target),
             exact ? "a Q8_0/Q4_0/Q4_1" : "an I8/I16");
  }
}

}  // namespace qtune
