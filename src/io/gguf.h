// io/gguf.h — GGUF v3 container: a validating reader and a writer (llama.cpp layout rules).
//
// File layout (little-endian):
//   "GGUF" u32 version(3) u64 n_tensors u64 n_kv
//   n_kv × { string key, u32 value_type, value }          string = u64 length + bytes
//   n_tensors × { string name, u32 n_dims, i64 ne[n_dims], u32 ggml_type, u64 offset }
//   zero padding to general.alignment (default 32), then the data section; each tensor's
//   offset is relative to the data section and a multiple of the alignment.
// ne[] is innermost first: a torch [out, in] weight has ne = {in, out}. to_float() converts to
// qtune's outermost-first Shape.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/file.h"
#include "core/tensor.h"
#include "io/ggml_blocks.h"

namespace qtune {

enum class GgufType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
const char* gguf_type_name(GgufType t);

// One metadata value. Integers are kept widened (signed in i, unsigned in u), floats in f;
// an ARRAY holds scalar or string elements of elem_type in arr (nested arrays are rejected).
struct GgufValue {
  GgufType type = GgufType::UINT32;
  GgufType elem_type = GgufType::UINT8;  // ARRAY only
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  std::string str;
  std::vector<GgufValue> arr;

  static GgufValue scalar_u(GgufType t, uint64_t v);
  static GgufValue scalar_i(GgufType t, int64_t v);
  static GgufValue scalar_f(GgufType t, double v);
  static GgufValue boolean(bool v);
  static GgufValue string(std::string s);
  static GgufValue array(GgufType elem, std::vector<GgufValue> elems);
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // innermost first, 1..4 dims
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;  // relative to the data section
  size_t nbytes = 0;
  const uint8_t* data = nullptr;  // into the mapping (valid while the GgufFile lives)
  int64_t numel() const;
  Shape shape() const;  // outermost first
};

class GgufFile {
 public:
  // Maps and validates the whole file; throws Error naming the file and field.
  explicit GgufFile(const std::string& path);
  const std::string& path() const { return file_->path(); }
  uint32_t version() const { return 3; }
  uint32_t alignment() const { return alignment_; }
  size_t data_offset() const { return data_offset_; }  // absolute start of the data section
  size_t file_size() const { return file_->size(); }

  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(const std::string& key) const;  // nullptr if absent
  bool has(const std::string& key) const { return find(key) != nullptr; }
  // Typed getters throw Error ("<file>: key 'k': missing" / "expected uint32, found string").
  // Integer getters accept any integer type whose value fits.
  uint32_t get_u32(const std::string& key) const;
  int32_t get_i32(const std::string& key) const;
  uint64_t get_u64(const std::string& key) const;
  float get_f32(const std::string& key) const;  // FLOAT32 or FLOAT64
  bool get_bool(const std::string& key) const;
  std::string get_str(const std::string& key) const;
  std::vector<std::string> get_arr_str(const std::string& key) const;
  std::vector<float> get_arr_f32(const std::string& key) const;
  std::vector<int32_t> get_arr_i32(const std::string& key) const;
  // With a default when absent (a present value of the wrong type still throws).
  uint32_t get_u32_or(const std::string& key, uint32_t def) const;
  float get_f32_or(const std::string& key, float def) const;
  bool get_bool_or(const std::string& key, bool def) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  // Dequantized copy with shape outermost first.
  Tensor to_float(const GgufTensorInfo& t) const;

 private:
  void parse();
  void parse_tensor_infos(Reader& r, uint64_t n_tensors);
  void check_tensor_data();
  const GgufValue& need(const std::string& key) const;

  std::unique_ptr<MappedFile> file_;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<GgufTensorInfo> tensors_;
  uint32_t alignment_ = 32;
  size_t data_offset_ = 0;
};

// A tensor to be written: name, ggml dims (innermost first) and type; its bytes come later.
struct GgufTensorDecl {
  std::string name;
  std::vector<int64_t> ne;
  GgmlType type = GgmlType::F32;
  size_t nbytes() const;
};

class GgufWriter {
 public:
  // Metadata setters keep first-insertion order; setting a key again replaces its value.
  void set(const std::string& key, GgufValue v);
  void set_u32(const std::string& key, uint32_t v) { set(key, GgufValue::scalar_u(GgufType::UINT32, v)); }
  void set_i32(const std::string& key, int32_t v) { set(key, GgufValue::scalar_i(GgufType::INT32, v)); }
  void set_u64(const std::string& key, uint64_t v) { set(key, GgufValue::scalar_u(GgufType::UINT64, v)); }
  void set_f32(const std::string& key, float v) { set(key, GgufValue::scalar_f(GgufType::FLOAT32, v)); }
  void set_bool(const std::string& key, bool v) { set(key, GgufValue::boolean(v)); }
  void set_str(const std::string& key, const std::string& v) { set(key, GgufValue::string(v)); }
  void set_arr_str(const std::string& key, const std::vector<std::string>& v);
  void set_arr_f32(const std::string& key, const std::vector<float>& v);
  void set_arr_i32(const std::string& key, const std::vector<int32_t>& v);

  // Converts t (outermost-first shape, 1..4 dims) to `type`; the row length must be a
  // multiple of the type's block size. Throws Error naming the tensor.
  void add_tensor(const std::string& name, const Tensor& t, GgmlType type);
  // Bytes already in ggml layout for ne (innermost first).
  void add_raw_tensor(const std::string& name, std::vector<int64_t> ne, GgmlType type, std::vector<uint8_t> bytes);
  // Writes atomically (temp file + rename). Tensors are laid out in insertion order, each at
  // the next multiple of general.alignment (32 unless set as a uint32 key).
  void write(const std::string& path) const;

 private:
  friend class GgufStreamWriter;
  struct Pending {
    GgufTensorDecl decl;
    std::vector<uint8_t> bytes;
  };
  uint64_t alignment(const std::string& path) const;
  // Magic, counts, metadata, tensor infos with sequential aligned offsets, padding.
  void write_header(AtomicFile& f, const std::vector<GgufTensorDecl>& tensors, uint64_t align) const;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Pending> tensors_;
};

// A GGUF bigger than memory, written tensor by tensor: the metadata (from a GgufWriter, whose own
// tensors are not written) and every tensor's name, dims and type are given first, since the
// header holds their offsets; then each tensor's bytes, in declaration order, in pieces of any
// size. Atomic like GgufWriter::write: nothing appears at path until commit(), and a writer
// destroyed before it (an error, an interrupt) removes its temp file.
class GgufStreamWriter {
 public:
  GgufStreamWriter(const std::string& path, const GgufWriter& meta, std::vector<GgufTensorDecl> tensors);
  // The next n bytes of the current tensor; a piece may not run past the tensor's end.
  void write(const void* p, size_t n);
  // Which tensor the next bytes belong to (tensors().size() when all are complete).
  size_t current() const { return cur_; }
  const std::vector<GgufTensorDecl>& tensors() const { return tensors_; }
  void commit();  // throws Error unless every tensor got all its bytes

 private:
  void next_if_complete();
  AtomicFile f_;
  std::vector<GgufTensorDecl> tensors_;
  uint64_t align_;
  size_t cur_ = 0, done_ = 0;  // the tensor being written, its bytes so far
};

}  // namespace qtune
