#include "io/gguf.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <unordered_set>

namespace qtune {

namespace {

constexpr uint32_t kVersion = 3;
constexpr uint32_t kDefaultAlignment = 32;
constexpr int kMaxDims = 4;         // GGML_MAX_DIMS
constexpr size_t kMaxNameLen = 63;  // GGML_MAX_NAME − 1 (llama.cpp rejects longer tensor names)

bool valid_type(uint32_t t) { return t <= uint32_t(GgufType::FLOAT64); }
bool is_unsigned(GgufType t) {
  return t == GgufType::UINT8 || t == GgufType::UINT16 || t == GgufType::UINT32 || t == GgufType::UINT64;
}
bool is_signed(GgufType t) {
  return t == GgufType::INT8 || t == GgufType::INT16 || t == GgufType::INT32 || t == GgufType::INT64;
}
bool is_float(GgufType t) { return t == GgufType::FLOAT32 || t == GgufType::FLOAT64; }

// Smallest encoding of one value of type t (a string is at least its u64 length).
size_t min_value_bytes(GgufType t) {
  switch (t) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::BOOL: return 1;
    case GgufType::UINT16: case GgufType::INT16: return 2;
    case GgufType::UINT32: case GgufType::INT32: case GgufType::FLOAT32: return 4;
    default: return 8;
  }
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

std::string read_string(Reader& r, const std::string& what) {
  uint64_t n = r.get<uint64_t>(what.c_str());
  if (n > r.left())
    fail("{}: {}: string length {} runs past the end of the file ({} bytes left)", r.path(), what, n, r.left());
  return r.string(size_t(n), what.c_str());
}

// Reads one value of type t; `what` names it for errors ("key 'general.name'").
GgufValue read_value(Reader& r, GgufType t, const std::string& what, bool in_array) {
  GgufValue v;
  v.type = t;
  const char* w = what.c_str();
  switch (t) {
    case GgufType::UINT8: v.u = r.get<uint8_t>(w); break;
    case GgufType::INT8: v.i = r.get<int8_t>(w); break;
    case GgufType::UINT16: v.u = r.get<uint16_t>(w); break;
    case GgufType::INT16: v.i = r.get<int16_t>(w); break;
    case GgufType::UINT32: v.u = r.get<uint32_t>(w); break;
    case GgufType::INT32: v.i = r.get<int32_t>(w); break;
    case GgufType::UINT64: v.u = r.get<uint64_t>(w); break;
    case GgufType::INT64: v.i = r.get<int64_t>(w); break;
    case GgufType::FLOAT32: v.f = r.get<float>(w); break;
    case GgufType::FLOAT64: v.f = r.get<double>(w); break;
    case GgufType::BOOL: v.u = r.get<uint8_t>(w) != 0; break;
    case GgufType::STRING: v.str = read_string(r, what); break;
    case GgufType::ARRAY: {
      QT_CHECK(!in_array, "{}: {}: nested arrays are not supported", r.path(), what);
      uint32_t et = r.get<uint32_t>(w);
      QT_CHECK(valid_type(et), "{}: {}: unknown array element type {}", r.path(), what, et);
      QT_CHECK(GgufType(et) != GgufType::ARRAY, "{}: {}: nested arrays are not supported", r.path(), what);
      v.elem_type = GgufType(et);
      uint64_t n = r.get<uint64_t>(w);
      uint64_t fits = r.left() / min_value_bytes(v.elem_type);
      QT_CHECK(n <= fits, "{}: {}: array of {} {} elements cannot fit in the {} bytes left", r.path(), what, n,
               gguf_type_name(v.elem_type), r.left());
      v.arr.reserve(size_t(n));
      for (uint64_t k = 0; k < n; k++) v.arr.push_back(read_value(r, v.elem_type, what, true));
      break;
    }
  }
  return v;
}

void write_value(AtomicFile& f, const GgufValue& v) {
  switch (v.type) {
    case GgufType::UINT8: f.put(uint8_t(v.u)); break;
    case GgufType::INT8: f.put(int8_t(v.i)); break;
    case GgufType::UINT16: f.put(uint16_t(v.u)); break;
    case GgufType::INT16: f.put(int16_t(v.i)); break;
    case GgufType::UINT32: f.put(uint32_t(v.u)); break;
    case GgufType::INT32: f.put(int32_t(v.i)); break;
    case GgufType::UINT64: f.put(uint64_t(v.u)); break;
    case GgufType::INT64: f.put(int64_t(v.i)); break;
    case GgufType::FLOAT32: f.put(float(v.f)); break;
    case GgufType::FLOAT64: f.put(double(v.f)); break;
    case GgufType::BOOL: f.put(uint8_t(v.u ? 1 : 0)); break;
    case GgufType::STRING:
      f.put(uint64_t(v.str.size()));
      f.write_str(v.str);
      break;
    case GgufType::ARRAY:
      f.put(uint32_t(v.elem_type));
      f.put(uint64_t(v.arr.size()));
      for (const auto& e : v.arr) {
        QT_ASSERT(e.type == v.elem_type);
        write_value(f, e);
      }
      break;
  }
}

}  // namespace

const char* gguf_type_name(GgufType t) {
  static const char* names[] = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
                                "bool", "string", "array", "uint64", "int64", "float64"};
  return valid_type(uint32_t(t)) ? names[uint32_t(t)] : "unknown";
}

GgufValue GgufValue::scalar_u(GgufType t, uint64_t v) {
  GgufValue r;
  r.type = t;
  r.u = v;
  return r;
}
GgufValue GgufValue::scalar_i(GgufType t, int64_t v) {
  GgufValue r;
  r.type = t;
  r.i = v;
  return r;
}
GgufValue GgufValue::scalar_f(GgufType t, double v) {
  GgufValue r;
  r.type = t;
  r.f = v;
  return r;
}
GgufValue GgufValue::boolean(bool v) { return scalar_u(GgufType::BOOL, v ? 1 : 0); }
GgufValue GgufValue::string(std::string s) {
  GgufValue r;
  r.type = GgufType::STRING;
  r.str = std::move(s);
  return r;
}
GgufValue GgufValue::array(GgufType elem, std::vector<GgufValue> elems) {
  GgufValue r;
  r.type = GgufType::ARRAY;
  r.elem_type = elem;
  r.arr = std::move(elems);
  return r;
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (auto d : ne) n *= d;
  return n;
}

Shape GgufTensorInfo::shape() const { return Shape(ne.rbegin(), ne.rend()); }

// ---------------------------------------------------------------------------------------------
// Reader

GgufFile::GgufFile(const std::string& path) : file_(std::make_unique<MappedFile>(path)) { parse(); }

void GgufFile::parse() {
  Reader r(*file_);
  const std::string& p = path();
  QT_CHECK(file_->size() >= 4 && std::memcmp(file_->data(), "GGUF", 4) == 0,
           "{}: not a GGUF file (magic is not 'GGUF')", p);
  r.bytes(4, "magic");
  uint32_t version = r.get<uint32_t>("version");
  QT_CHECK(version == kVersion, "{}: GGUF version {} is not supported (only version 3)", p, version);
  uint64_t n_tensors = r.get<uint64_t>("tensor count");
  uint64_t n_kv = r.get<uint64_t>("metadata count");
  // A key-value takes ≥ 13 bytes (u64 key length, u32 type, 1 byte value), a tensor info ≥ 32.
  QT_CHECK(n_kv <= r.left() / 13, "{}: metadata count {} is impossible for a {}-byte file", p, n_kv,
           file_->size());
  QT_CHECK(n_tensors <= r.left() / 32, "{}: tensor count {} is impossible for a {}-byte file", p, n_tensors,
           file_->size());

  std::unordered_set<std::string> seen;
  for (uint64_t k = 0; k < n_kv; k++) {
    std::string key = read_string(r, fmt::format("metadata key #{}", k));
    QT_CHECK(seen.insert(key).second, "{}: duplicate metadata key '{}'", p, excerpt(key));
    std::string what = fmt::format("key '{}'", excerpt(key));
    uint32_t t = r.get<uint32_t>(what.c_str());
    QT_CHECK(valid_type(t), "{}: {}: unknown value type {}", p, what, t);
    kv_.emplace_back(key, read_value(r, GgufType(t), what, false));
  }
  if (const GgufValue* a = find("general.alignment")) {
    QT_CHECK(a->type == GgufType::UINT32, "{}: key 'general.alignment': expected uint32, found {}", p,
             gguf_type_name(a->type));
    QT_CHECK(a->u > 0 && (a->u & (a->u - 1)) == 0, "{}: key 'general.alignment': {} is not a power of two", p,
             a->u);
    alignment_ = uint32_t(a->u);
  }
  parse_tensor_infos(r, n_tensors);
  data_offset_ = size_t(align_up(r.pos(), alignment_));
  check_tensor_data();
}

void GgufFile::parse_tensor_infos(Reader& r, uint64_t n_tensors) {
  const std::string& p = path();
  std::unordered_set<std::string> seen;
  for (uint64_t k = 0; k < n_tensors; k++) {
    GgufTensorInfo t;
    t.name = read_string(r, fmt::format("tensor #{} name", k));
    std::string what = fmt::format("tensor '{}'", excerpt(t.name));
    QT_CHECK(!t.name.empty() && t.name.size() <= kMaxNameLen, "{}: tensor #{}: name length {} is not in 1..{}",
             p, k, t.name.size(), kMaxNameLen);
    QT_CHECK(seen.insert(t.name).second, "{}: duplicate tensor name '{}'", p, excerpt(t.name));
    uint32_t n_dims = r.get<uint32_t>(what.c_str());
    QT_CHECK(n_dims >= 1 && n_dims <= kMaxDims, "{}: {}: n_dims {} is not in 1..{}", p, what, n_dims, kMaxDims);
    int64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
      int64_t ne = r.get<int64_t>(what.c_str());
      QT_CHECK(ne > 0, "{}: {}: ne[{}] = {} must be positive", p, what, d, ne);
      QT_CHECK(numel <= std::numeric_limits<int64_t>::max() / ne, "{}: {}: element count overflows", p, what);
      numel *= ne;
      t.ne.push_back(ne);
    }
    uint32_t type = r.get<uint32_t>(what.c_str());
    QT_CHECK(ggml_type_supported(type), "{}: {}: unsupported tensor type {} (id {})", p, what,
             ggml_type_name(type), type);
    t.type = GgmlType(type);
    const auto& info = ggml_type_info(t.type);
    QT_CHECK(t.ne[0] % info.block_size == 0, "{}: {}: row length ne[0] = {} is not a multiple of the {} block size {}",
             p, what, t.ne[0], info.name, info.block_size);
    uint64_t blocks = uint64_t(numel / info.block_size);
    QT_CHECK(blocks <= file_->size() / info.type_size, "{}: {}: {} {} elements need more bytes than the file has",
             p, what, numel, info.name);
    t.nbytes = size_t(blocks) * info.type_size;
    t.offset = r.get<uint64_t>(what.c_str());
    tensors_.push_back(std::move(t));
  }
}

void GgufFile::check_tensor_data() {
  const std::string& p = path();
  const size_t size = file_->size();
  for (auto& t : tensors_) {
    QT_CHECK(t.offset % alignment_ == 0, "{}: tensor '{}': offset {} is not a multiple of the alignment {}", p,
             t.name, t.offset, alignment_);
    QT_CHECK(data_offset_ <= size && t.offset <= size - data_offset_ && t.nbytes <= size - data_offset_ - t.offset,
             "{}: tensor '{}': data at offset {} (+{} bytes, data section at {}) runs beyond end of file ({} bytes)",
             p, t.name, t.offset, t.nbytes, data_offset_, size);
    t.data = file_->data() + data_offset_ + t.offset;
  }
  // Two tensors sharing bytes would be one tensor's data read twice under two names (llama.cpp
  // demands sequential offsets, so no valid file does it). Sorted by offset, each must end
  // before the next begins.
  std::vector<const GgufTensorInfo*> by_offset;
  for (const auto& t : tensors_) by_offset.push_back(&t);
  std::stable_sort(by_offset.begin(), by_offset.end(),
                   [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < by_offset.size(); k++) {
    const GgufTensorInfo &a = *by_offset[k - 1], &b = *by_offset[k];
    QT_CHECK(a.offset + a.nbytes <= b.offset,
             "{}: tensor '{}': data at offset {} overlaps tensor '{}' (offset {}, {} bytes)", p, excerpt(b.name),
             b.offset, excerpt(a.name), a.offset, a.nbytes);
  }
}

const GgufValue* GgufFile::find(const std::string& key) const {
  for (const auto& [k, v] : kv_)
    if (k == key) return &v;
  return nullptr;
}

const GgufValue& GgufFile::need(const std::string& key) const {
  const GgufValue* v = find(key);
  QT_CHECK(v, "{}: key '{}': missing", path(), excerpt(key));
  return *v;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

namespace {

// An integer value as a signed 128-bit number so every range check is exact.
__int128 as_int(const GgufValue& v, const std::string& file, const std::string& key, const char* want) {
  if (is_unsigned(v.type)) return __int128(v.u);
  if (is_signed(v.type)) return __int128(v.i);
  fail("{}: key '{}': expected {}, found {}", file, excerpt(key), want, gguf_type_name(v.type));
}

template <class T>
T int_in_range(const GgufValue& v, const std::string& file, const std::string& key, const char* want) {
  __int128 x = as_int(v, file, key, want);
  QT_CHECK(x >= __int128(std::numeric_limits<T>::min()) && x <= __int128(std::numeric_limits<T>::max()),
           "{}: key '{}': value {} does not fit in {}", file, excerpt(key), int64_t(x), want);
  return T(x);
}

}  // namespace

uint32_t GgufFile::get_u32(const std::string& key) const {
  return int_in_range<uint32_t>(need(key), path(), key, "uint32");
}
int32_t GgufFile::get_i32(const std::string& key) const {
  return int_in_range<int32_t>(need(key), path(), key, "int32");
}
uint64_t GgufFile::get_u64(const std::string& key) const {
  return int_in_range<uint64_t>(need(key), path(), key, "uint64");
}
float GgufFile::get_f32(const std::string& key) const {
  const GgufValue& v = need(key);
  QT_CHECK(is_float(v.type), "{}: key '{}': expected float32, found {}", path(), excerpt(key),
           gguf_type_name(v.type));
  return float(v.f);
}
bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue& v = need(key);
  QT_CHECK(v.type == GgufType::BOOL, "{}: key '{}': expected bool, found {}", path(), excerpt(key),
           gguf_type_name(v.type));
  return v.u != 0;
}
std::string GgufFile::get_str(const std::string& key) const {
  const GgufValue& v = need(key);
  QT_CHECK(v.type == GgufType::STRING, "{}: key '{}': expected string, found {}", path(), excerpt(key),
           gguf_type_name(v.type));
  return v.str;
}

std::vector<std::string> GgufFile::get_arr_str(const std::string& key) const {
  const GgufValue& v = need(key);
  QT_CHECK(v.type == GgufType::ARRAY && v.elem_type == GgufType::STRING,
           "{}: key '{}': expected an array of strings, found {}", path(), excerpt(key), gguf_type_name(v.type));
  std::vector<std::string> out;
  out.reserve(v.arr.size());
  for (const auto& e : v.arr) out.push_back(e.str);
  return out;
}

std::vector<float> GgufFile::get_arr_f32(const std::string& key) const {
  const GgufValue& v = need(key);
  QT_CHECK(v.type == GgufType::ARRAY && is_float(v.elem_type), "{}: key '{}': expected an array of float32", path(),
           key);
  std::vector<float> out;
  out.reserve(v.arr.size());
  for (const auto& e : v.arr) out.push_back(float(e.f));
  return out;
}

std::vector<int32_t> GgufFile::get_arr_i32(const std::string& key) const {
  const GgufValue& v = need(key);
  QT_CHECK(v.type == GgufType::ARRAY && (is_signed(v.elem_type) || is_unsigned(v.elem_type)),
           "{}: key '{}': expected an array of integers", path(), excerpt(key));
  std::vector<int32_t> out;
  out.reserve(v.arr.size());
  for (const auto& e : v.arr) out.push_back(int_in_range<int32_t>(e, path(), key, "int32"));
  return out;
}

uint32_t GgufFile::get_u32_or(const std::string& key, uint32_t def) const { return has(key) ? get_u32(key) : def; }
float GgufFile::get_f32_or(const std::string& key, float def) const { return has(key) ? get_f32(key) : def; }
bool GgufFile::get_bool_or(const std::string& key, bool def) const { return has(key) ? get_bool(key) : def; }

Tensor GgufFile::to_float(const GgufTensorInfo& t) const {
  Tensor out(t.shape());
  dequantize_any(t.type, t.data, out.ptr(), t.numel());
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writer

void GgufWriter::set(const std::string& key, GgufValue v) {
  QT_ASSERT(valid_type(uint32_t(v.type)));
  for (auto& [k, old] : kv_)
    if (k == key) {
      old = std::move(v);
      return;
    }
  kv_.emplace_back(key, std::move(v));
}

void GgufWriter::set_arr_str(const std::string& key, const std::vector<std::string>& v) {
  std::vector<GgufValue> e;
  e.reserve(v.size());
  for (const auto& s : v) e.push_back(GgufValue::string(s));
  set(key, GgufValue::array(GgufType::STRING, std::move(e)));
}
void GgufWriter::set_arr_f32(const std::string& key, const std::vector<float>& v) {
  std::vector<GgufValue> e;
  e.reserve(v.size());
  for (float x : v) e.push_back(GgufValue::scalar_f(GgufType::FLOAT32, x));
  set(key, GgufValue::array(GgufType::FLOAT32, std::move(e)));
}
void GgufWriter::set_arr_i32(const std::string& key, const std::vector<int32_t>& v) {
  std::vector<GgufValue> e;
  e.reserve(v.size());
  for (int32_t x : v) e.push_back(GgufValue::scalar_i(GgufType::INT32, x));
  set(key, GgufValue::array(GgufType::INT32, std::move(e)));
}

void GgufWriter::add_tensor(const std::string& name, const Tensor& t, GgmlType type) {
  QT_CHECK(!t.shape.empty() && t.shape.size() <= kMaxDims, "tensor '{}': {} dims (GGUF allows 1..4)", name,
           t.shape.size());
  std::vector<int64_t> ne(t.shape.rbegin(), t.shape.rend());
  const auto& info = ggml_type_info(type);
  QT_CHECK(ne[0] > 0 && ne[0] % info.block_size == 0,
           "tensor '{}': row length {} is not a multiple of the {} block size {}", name, ne[0], info.name,
           info.block_size);
  std::vector<uint8_t> bytes(ggml_row_bytes(type, t.numel()));
  try {
    quantize_any(type, t.ptr(), bytes.data(), t.numel());
  } catch (const Error& e) {
    fail("tensor '{}': {}", name, e.what());
  }
  add_raw_tensor(name, std::move(ne), type, std::move(bytes));
}

namespace {

void check_decl(const GgufTensorDecl& d) {
  const std::string& name = d.name;
  QT_CHECK(!name.empty() && name.size() <= kMaxNameLen, "tensor '{}': name length must be 1..{}", name,
           kMaxNameLen);
  QT_CHECK(!d.ne.empty() && d.ne.size() <= kMaxDims, "tensor '{}': {} dims (GGUF allows 1..4)", name, d.ne.size());
  for (auto n : d.ne) QT_CHECK(n > 0, "tensor '{}': dimension {} must be positive", name, n);
  const auto& info = ggml_type_info(d.type);
  QT_CHECK(d.ne[0] % info.block_size == 0, "tensor '{}': row length {} is not a multiple of the {} block size {}",
           name, d.ne[0], info.name, info.block_size);
}

}  // namespace

size_t GgufTensorDecl::nbytes() const {
  int64_t n = 1;
  for (auto d : ne) n *= d;
  return ggml_row_bytes(type, n);
}

void GgufWriter::add_raw_tensor(const std::string& name, std::vector<int64_t> ne, GgmlType type,
                                std::vector<uint8_t> bytes) {
  GgufTensorDecl d{name, std::move(ne), type};
  check_decl(d);
  for (const auto& p : tensors_) QT_CHECK(p.decl.name != name, "tensor '{}': added twice", name);
  QT_CHECK(bytes.size() == d.nbytes(), "tensor '{}': {} bytes given, {} needs {}", name, bytes.size(),
           ggml_type_info(type).name, d.nbytes());
  tensors_.push_back({std::move(d), std::move(bytes)});
}

uint64_t GgufWriter::alignment(const std::string& path) const {
  uint64_t align = kDefaultAlignment;
  for (const auto& [k, v] : kv_)
    if (k == "general.alignment") {
      QT_CHECK(v.type == GgufType::UINT32 && v.u > 0 && (v.u & (v.u - 1)) == 0,
               "{}: general.alignment must be a uint32 power of two", path);
      align = v.u;
    }
  return align;
}

void GgufWriter::write_header(AtomicFile& f, const std::vector<GgufTensorDecl>& tensors, uint64_t align) const {
  f.write_str("GGUF");
  f.put(kVersion);
  f.put(uint64_t(tensors.size()));
  f.put(uint64_t(kv_.size()));
  for (const auto& [k, v] : kv_) {
    f.put(uint64_t(k.size()));
    f.write_str(k);
    f.put(uint32_t(v.type));
    write_value(f, v);
  }
  // Tensor infos: sequential offsets, each padded to the alignment (llama.cpp's layout).
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    f.put(uint64_t(t.name.size()));
    f.write_str(t.name);
    f.put(uint32_t(t.ne.size()));
    for (auto d : t.ne) f.put(int64_t(d));
    f.put(uint32_t(t.type));
    f.put(offset);
    offset = align_up(offset + t.nbytes(), align);
  }
  f.pad_to(size_t(align));
}

void GgufWriter::write(const std::string& path) const {
  const uint64_t align = alignment(path);
  AtomicFile f(path);
  std::vector<GgufTensorDecl> decls;
  for (const auto& t : tensors_) decls.push_back(t.decl);
  write_header(f, decls, align);
  for (const auto& t : tensors_) {
    f.write(t.bytes.data(), t.bytes.size());
    f.pad_to(size_t(align));
  }
  f.commit();
}

// ---------------------------------------------------------------------------------------------
// Streaming writer

GgufStreamWriter::GgufStreamWriter(const std::string& path, const GgufWriter& meta,
                                   std::vector<GgufTensorDecl> tensors)
    : f_(path), tensors_(std::move(tensors)), align_(meta.alignment(path)) {
  std::unordered_set<std::string> seen;
  for (const auto& d : tensors_) {
    check_decl(d);
    QT_CHECK(seen.insert(d.name).second, "tensor '{}': added twice", d.name);
  }
  meta.write_header(f_, tensors_, align_);
}

void GgufStreamWriter::write(const void* p, size_t n) {
  QT_CHECK(cur_ < tensors_.size(), "GGUF stream: {} bytes past the last tensor", n);
  const GgufTensorDecl& t = tensors_[cur_];
  QT_CHECK(n <= t.nbytes() - done_, "GGUF stream: tensor '{}': {} bytes given, {} left of its {}", t.name, n,
           t.nbytes() - done_, t.nbytes());
  f_.write(p, n);
  done_ += n;
  next_if_complete();
}

void GgufStreamWriter::next_if_complete() {
  while (cur_ < tensors_.size() && done_ == tensors_[cur_].nbytes()) {
    f_.pad_to(size_t(align_));
    ++cur_;
    done_ = 0;
  }
}

void GgufStreamWriter::commit() {
  QT_CHECK(cur_ == tensors_.size(), "GGUF stream: tensor '{}' is incomplete ({} of {} bytes)",
           tensors_[cur_].name, done_, tensors_[cur_].nbytes());
  f_.commit();
}

}  // namespace qtune
