// io/gguf_int_write.cpp — writing integer weights to GGUF exactly (layouts: gguf_int.h).
//
// Every weight is encoded, decoded again with the reader's own decode_int_weight, and compared
// with the original row by row, bit for bit, before anything is added to the writer: a layout
// that would not re-load exactly is an Error naming the tensor, never a silently different file.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "io/gguf.h"
#include "io/gguf_int.h"
#include "quant/int_planes.h"

namespace qtune {

namespace {

// The signed integers of a plane: v = k·(code − offset), scale/k, k = 2 when some offset is a
// half-integer (the zero-free grid), else 1; k = 0 when no such form exists (`why` says so).
struct IntForm {
  int k = 1;
  int32_t vmin = 0, vmax = 0;
  std::string why;
};

IntForm int_form(const QuantMatrix& p) {
  IntForm f;
  const int64_t ng = p.groups_per_row();
  for (int64_t r = 0; r < p.rows && f.k; r++)
    for (int64_t g = 0; g < ng && f.k; g++) {
      const float o = p.offset(r, g);
      if (o == std::floor(o)) continue;
      if (2 * o == std::floor(2 * o)) {
        f.k = 2;
        continue;
      }
      f.k = 0;
      f.why = fmt::format("zero point {} (row {}) is neither an integer nor a half-integer", o, r);
    }
  if (f.k == 2)
    for (int64_t i = 0; i < p.rows * ng; i++)
      if (p.scale[i] * 0.5f * 2.0f != p.scale[i]) {
        f.k = 0;
        f.why = fmt::format("scale {} (row {}) cannot be halved exactly for its half-integer zero point", p.scale[i],
                            i / ng);
        break;
      }
  if (!f.k) return f;
  for (int64_t r = 0; r < p.rows; r++)
    for (int64_t c = 0; c < p.cols; c++) {
      const int32_t v = int32_t(float(f.k) * (float(p.code(r, c)) - p.offset(r, c / p.group_size())));
      f.vmin = std::min(f.vmin, v);
      f.vmax = std::max(f.vmax, v);
    }
  return f;
}

int bits_needed(int32_t vmin, int32_t vmax) {
  int b = 1;
  while (b < 32 && (vmin < -(int64_t(1) << (b - 1)) || vmax > (int64_t(1) << (b - 1)) - 1)) b++;
  return b;
}

// What gets written for one weight.
struct Encoded {
  GgmlType type = GgmlType::I8;
  std::vector<uint8_t> bytes;           // the weight, ne = {cols, rows}
  std::vector<float> scale;             // exact layout: [rows, groups]
  int64_t groups = 1, group_size = 0;   // exact layout
  std::vector<float> exact_scale, exact_zero;  // block layout
};

// The block type of a single plane, or "" and the reason there is none.
GgmlType block_type(const QuantMatrix& p, const IntForm& f, std::string* why) {
  if (p.cols % kQK) *why = fmt::format("row length {} is not a multiple of {}", p.cols, kQK);
  else if (p.spec.group % kQK) *why = fmt::format("group size {} is not a multiple of {}", p.spec.group, kQK);
  else if (p.spec.bits <= 4) return p.spec.symmetric ? GgmlType::Q4_0 : GgmlType::Q4_1;
  else if (!f.k) *why = f.why;
  else if (f.vmin >= -128 && f.vmax <= 127) return GgmlType::Q8_0;
  else *why = fmt::format("values need {} bits", bits_needed(f.vmin, f.vmax));
  return GgmlType::F32;  // none
}

// Blocks of `type` for plane p; fills the exact arrays and the fp16 errors of r.
Encoded encode_blocks(const QuantMatrix& p, GgmlType type, int k, GgufIntReport& r) {
  Encoded e;
  e.type = type;
  const int64_t nb = p.cols / kQK, ng = p.groups_per_row(), gs = p.group_size();
  // Exact entries per row: one per group when groups tile the row, else one per block.
  const int64_t G = p.spec.group == 0 ? 1 : p.cols % gs == 0 ? p.cols / gs : nb, per = nb / G;
  const size_t bsz = ggml_type_info(type).type_size;
  e.bytes.assign(size_t(p.rows * nb) * bsz, 0);
  e.exact_scale.resize(size_t(p.rows * G));
  if (type == GgmlType::Q4_1) e.exact_zero.resize(e.exact_scale.size());
  const float levels = float((1 << p.spec.bits) - 1);
  for (int64_t row = 0; row < p.rows; row++)
    for (int64_t b = 0; b < nb; b++) {
      const int64_t g = b * kQK / gs, i = row * G + b / per;
      const float s = p.scale[row * ng + g] / float(k), off = p.offset(row, g);
      e.exact_scale[i] = s;
      uint8_t* blk = e.bytes.data() + size_t(row * nb + b) * bsz;
      const uint16_t dh = fp32_to_fp16(s);
      std::memcpy(blk, &dh, 2);  // little-endian host (as the rest of the GGUF code)
      r.fp16_scale_err = std::max(r.fp16_scale_err, std::fabs(double(fp16_to_fp32(dh)) - s) / std::fabs(s));
      uint8_t q[kQK];
      for (int j = 0; j < kQK; j++) {
        const uint32_t code = p.code(row, b * kQK + j);
        if (type == GgmlType::Q8_0) q[j] = uint8_t(int8_t(float(k) * (float(code) - off)));
        else if (type == GgmlType::Q4_0) q[j] = uint8_t(int(code) - (1 << (p.spec.bits - 1)) + 8);
        else q[j] = uint8_t(code);
      }
      if (type == GgmlType::Q8_0) {
        std::memcpy(blk + 2, q, kQK);
        continue;
      }
      uint8_t* qs = blk + 2;
      if (type == GgmlType::Q4_1) {
        e.exact_zero[i] = off;
        const float m = q4_1_min(s, off);
        const uint16_t mh = fp32_to_fp16(m);
        std::memcpy(blk + 2, &mh, 2);
        r.fp16_min_err =
            std::max(r.fp16_min_err, std::fabs(double(fp16_to_fp32(mh)) - m) / (std::fabs(double(s)) * levels));
        qs = blk + 4;
      }
      for (int j = 0; j < kQK / 2; j++) qs[j] = uint8_t(q[j] | (q[j + kQK / 2] << 4));
    }
  return e;
}

// max over rows of max|w_llama.cpp − w| / max|w|, w_llama.cpp = ggml's own dequantization.
double llamacpp_weight_error(const QuantMatrix& p, const Encoded& e) {
  std::vector<float> exact(size_t(p.cols)), ggml(size_t(p.cols));
  const size_t row_bytes = ggml_row_bytes(e.type, p.cols);
  double worst = 0;
  for (int64_t r = 0; r < p.rows; r++) {
    p.dequantize_rows(r, 1, exact.data());
    dequantize_any(e.type, e.bytes.data() + size_t(r) * row_bytes, ggml.data(), p.cols);
    double err = 0, amax = 0;
    for (int64_t c = 0; c < p.cols; c++) {
      err = std::max(err, std::fabs(double(ggml[c]) - exact[c]));
      amax = std::max(amax, std::fabs(double(exact[c])));
    }
    worst = std::max(worst, amax > 0 ? err / amax : err);
  }
  return worst;
}

template <class T>
void put_ints(std::vector<uint8_t>& bytes, int64_t i, int32_t v) {
  const T x = T(v);
  std::memcpy(bytes.data() + size_t(i) * sizeof(T), &x, sizeof(T));
}

// The exact layout of one plane with integer form f.
Encoded encode_exact(const std::string& path, const std::string& name, const QuantMatrix& p, const IntForm& f) {
  Encoded e;
  const int bits = bits_needed(f.vmin, f.vmax);
  e.type = bits <= 8 ? GgmlType::I8 : bits <= 16 ? GgmlType::I16 : GgmlType::I32;
  e.groups = p.groups_per_row();
  e.group_size = e.groups > 1 ? p.group_size() : 0;
  // I32 is read back as int_planes (two 16-bit planes whose float sum rounds twice): one plane
  // of wider values has no exact layout.
  QT_CHECK(e.type != GgmlType::I32, "{}: tensor '{}': cannot be stored exactly: one plane with {}-bit values "
           "(store it as planes_from_integers planes instead)", path, name, bits);
  e.bytes.resize(size_t(p.rows * p.cols) * (e.type == GgmlType::I8 ? 1 : 2));
  for (int64_t r = 0; r < p.rows; r++)
    for (int64_t c = 0; c < p.cols; c++) {
      const int32_t v = int32_t(float(f.k) * (float(p.code(r, c)) - p.offset(r, c / p.group_size())));
      if (e.type == GgmlType::I8) put_ints<int8_t>(e.bytes, r * p.cols + c, v);
      else put_ints<int16_t>(e.bytes, r * p.cols + c, v);
    }
  e.scale.resize(p.scale.size());
  for (size_t i = 0; i < e.scale.size(); i++) e.scale[i] = p.scale[i] / float(f.k);
  return e;
}

// Several planes: their exact integers (int_planes.h) as one I32 tensor, per-row scales.
Encoded encode_planes(const std::string& path, const std::string& name, const std::vector<QuantMatrix>& planes) {
  std::vector<int32_t> v;
  Encoded e;
  QT_CHECK(integers_from_planes(planes, v, e.scale),
           "{}: tensor '{}': cannot be stored exactly: its {} planes are not integer planes with per-row scales in "
           "power-of-two ratios (quant/int_planes.h)", path, name, planes.size());
  e.type = GgmlType::I32;
  e.bytes.resize(v.size() * 4);
  std::memcpy(e.bytes.data(), v.data(), e.bytes.size());
  return e;
}

void check_planes(const std::string& path, const std::string& name, const std::vector<QuantMatrix>& planes) {
  QT_CHECK(!planes.empty(), "{}: integer tensor '{}' has no planes", path, name);
  for (const QuantMatrix& p : planes) {
    QT_CHECK(quant_bits_supported(p.spec.bits) && p.rows > 0 && p.cols > 0 && p.spec.group >= 0 &&
                 p.codes.size() == size_t(p.rows * p.row_bytes()) &&
                 p.scale.size() == size_t(p.rows * p.groups_per_row()) && p.zero.size() == p.scale.size(),
             "{}: integer tensor '{}': inconsistent matrix ({} bits, [{}, {}], group {})", path, name, p.spec.bits,
             p.rows, p.cols, p.spec.group);
    for (size_t i = 0; i < p.scale.size(); i++)
      QT_CHECK(std::isfinite(p.scale[i]) && p.scale[i] > 0 && std::isfinite(p.zero[i]),
               "{}: integer tensor '{}': scale {} / zero point {} (row {}) must be finite, the scale positive", path,
               name, p.scale[i], p.zero[i], int64_t(i) / p.groups_per_row());
  }
}

// Decodes e exactly as the reader will and compares every row with the original, bit for bit.
void verify(const std::string& path, const std::string& name, const std::vector<QuantMatrix>& planes,
            const Encoded& e) {
  StoredIntWeight s;
  s.file = path;
  s.name = name;
  s.type = e.type;
  s.rows = planes[0].rows;
  s.cols = planes[0].cols;
  s.data = e.bytes.data();
  if (!e.exact_scale.empty()) s.exact_scale = &e.exact_scale;
  if (!e.exact_zero.empty()) s.exact_zero = &e.exact_zero;
  if (!e.scale.empty()) {
    s.scale = e.scale.data();
    s.scale_cols = e.groups;
    s.group_size = e.group_size;
  }
  const std::vector<QuantMatrix> back = decode_int_weight(s);
  std::vector<float> a(size_t(s.cols)), b(a.size()), tmp(a.size());
  for (int64_t r = 0; r < s.rows; r++) {
    sum_planes(planes, r, 1, a.data(), tmp.data());
    sum_planes(back, r, 1, b.data(), tmp.data());
    for (int64_t c = 0; c < s.cols; c++)
      QT_CHECK(std::memcmp(&a[c], &b[c], 4) == 0,
               "{}: tensor '{}': cannot be stored exactly as {}: [{}, {}] = {} would re-load as {}", path, name,
               ggml_type_info(e.type).name, r, c, a[c], b[c]);
  }
}

void emit(GgufWriter& w, const std::string& name, int64_t rows, int64_t cols, Encoded e) {
  w.add_raw_tensor(name, {cols, rows}, e.type, std::move(e.bytes));
  if (!e.exact_scale.empty()) w.set_arr_f32(exact_scale_key(name), e.exact_scale);
  if (!e.exact_zero.empty()) w.set_arr_f32(exact_zero_key(name), e.exact_zero);
  if (e.exact_scale.empty()) {
    std::vector<uint8_t> s(e.scale.size() * 4);
    std::memcpy(s.data(), e.scale.data(), s.size());
    w.add_raw_tensor(scale_tensor_name(name), {e.groups, rows}, GgmlType::F32, std::move(s));
    if (e.groups > 1) w.set_u32(group_size_key(name), uint32_t(e.group_size));
  }
}

}  // namespace

GgufIntReport add_int_weight(GgufWriter& w, const std::string& path, const std::string& name,
                             const std::vector<QuantMatrix>& planes) {
  check_planes(path, name, planes);
  GgufIntReport r;
  r.name = name;
  r.planes = int(planes.size());
  Encoded e;
  if (planes.size() > 1) {
    r.not_block = fmt::format("{} planes (values wider than 16 bits)", planes.size());
    e = encode_planes(path, name, planes);
  } else {
    const QuantMatrix& p = planes[0];
    const IntForm f = int_form(p);
    const GgmlType bt = block_type(p, f, &r.not_block);
    if (bt != GgmlType::F32) {
      e = encode_blocks(p, bt, bt == GgmlType::Q8_0 ? f.k : 1, r);
      const double err = std::max(r.fp16_scale_err, r.fp16_min_err);
      if (err <= kMaxFp16ScaleError) {
        r.llamacpp_weight_err = llamacpp_weight_error(p, e);
      } else {  // llama.cpp would misread it: keep the file exact and say why
        r.not_block = fmt::format("the fp16 rounding of its {} scales would be {:.3g} relative (> {:g})",
                                  ggml_type_info(bt).name, err, kMaxFp16ScaleError);
        r.fp16_scale_err = r.fp16_min_err = 0;
      }
    }
    if (!r.not_block.empty()) {
      QT_CHECK(f.k, "{}: tensor '{}': cannot be stored exactly ({}): {}", path, name, r.not_block, f.why);
      e = encode_exact(path, name, p, f);
    }
  }
  verify(path, name, planes, e);
  r.type = e.type;
  emit(w, name, planes[0].rows, planes[0].cols, std::move(e));
  return r;
}

}  // namespace qtune
