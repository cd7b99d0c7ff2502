// io/safetensors.h — the safetensors container (Hugging Face): a validating reader and a writer.
//
// File layout (little-endian):
//   u64 N, then N bytes of UTF-8 JSON (may be padded with spaces), then the data buffer:
//   { "<name>": {"dtype": "F32"|"F16"|"BF16"|..., "shape": [d0, d1, ...],
//                "data_offsets": [begin, end]},          offsets relative to the buffer start
//     "__metadata__": {"<key>": "<string value>", ...} }  optional, string values only
// Shapes are outermost first (a torch [out, in] weight is "shape": [out, in]), row-major, as
// qtune's Shape. Only F32, F16 and BF16 convert to float; tensors of other dtypes (I64, U8, ...)
// are listed, and reading one throws an Error naming it.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/file.h"
#include "core/tensor.h"
#include "quant/bf16.h"  // fp32_to_bf16, bf16_to_fp32

namespace qtune {

enum class SafetensorsDtype { F32, F16, BF16, Other };

struct SafetensorsTensor {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::F32;
  std::string dtype_name;  // as written ("BF16", "I64", ...)
  Shape shape;             // outermost first; {} is a scalar
  uint64_t offset = 0;     // absolute byte offset in the file
  size_t nbytes = 0;
  int64_t numel() const { return qtune::numel(shape); }
};

// bytes per element of a float dtype (0 for Other).
size_t safetensors_dtype_size(SafetensorsDtype t);
// "F32" → F32 ...; anything else → Other.
SafetensorsDtype safetensors_dtype_from_name(const std::string& name);
const char* safetensors_dtype_name(SafetensorsDtype t);

// n elements of src (stored as t) → n floats. t must not be Other.
void safetensors_to_float(SafetensorsDtype t, const uint8_t* src, float* dst, int64_t n);

// The header, parsed and validated: its length, the JSON, every entry's dtype / shape / offsets
// (inside the file, the byte count matching dtype × shape, no two overlapping).
struct SafetensorsHeader {
  std::string path;
  size_t file_size = 0;
  size_t data_offset = 0;                  // absolute start of the data buffer
  std::vector<SafetensorsTensor> tensors;  // sorted by offset
  std::map<std::string, std::string> metadata;
  const SafetensorsTensor* find(const std::string& name) const;  // nullptr if absent
};
// Reads only the header (the first 8 + N bytes), for loaders that pread tensors one at a time
// (io/model_file.h LazyTensor). Throws Error "<path>: ..." naming the entry.
SafetensorsHeader read_safetensors_header(const std::string& path);

// A mapped file with its header: for small files read whole (adapters).
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // throws Error like read_safetensors_header
  const SafetensorsHeader& header() const { return header_; }
  const std::string& path() const { return header_.path; }
  const std::vector<SafetensorsTensor>& tensors() const { return header_.tensors; }
  const SafetensorsTensor* find(const std::string& name) const { return header_.find(name); }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  // A float copy of tensor `name`; throws Error naming the file and tensor if it is absent or
  // not a float dtype.
  Tensor to_float(const std::string& name) const;
  const uint8_t* bytes(const SafetensorsTensor& t) const { return file_->data() + t.offset; }

 private:
  std::unique_ptr<MappedFile> file_;
  SafetensorsHeader header_;
};

// One tensor to write: float values, stored as dtype (F32, F16 or BF16).
struct SafetensorsEntry {
  std::string name;
  Shape shape;
  const float* data = nullptr;  // numel(shape) floats, must outlive the write
  SafetensorsDtype dtype = SafetensorsDtype::F32;
};

// Writes atomically (temp file + rename): header (keys in the given order, "__metadata__" first
// when non-empty, padded to 8 bytes), then the tensors packed in the given order. Throws Error
// naming the path (disk full, ...) or the entry (duplicate name, Other dtype, null data).
void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& entries,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace qtune
