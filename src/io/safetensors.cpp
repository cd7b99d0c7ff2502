#include "io/safetensors.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "io/ggml_blocks.h"

namespace qtune {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100u << 20;  // the format's own limit

// Element sizes of the dtypes safetensors defines; 0 for a name it does not define.
size_t any_dtype_size(const std::string& name) {
  static const std::map<std::string, size_t> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"U64", 8}, {"I32", 4}, {"U32", 4},
      {"I16", 2}, {"U16", 2}, {"I8", 1},  {"U8", 1},   {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  auto it = sizes.find(name);
  return it == sizes.end() ? 0 : it->second;
}

SafetensorsTensor parse_entry(const std::string& path, const std::string& name, const nlohmann::json& v,
                              size_t buffer_bytes) {
  auto bad = [&](const std::string& why) { fail("{}: tensor '{}': {}", path, name, why); };
  if (!v.is_object()) bad("header entry is not an object");
  SafetensorsTensor t;
  t.name = name;
  auto dt = v.find("dtype");
  if (dt == v.end() || !dt->is_string()) bad("no \"dtype\" string");
  t.dtype_name = dt->get<std::string>();
  const size_t elem = any_dtype_size(t.dtype_name);
  if (elem == 0) bad(fmt::format("unknown dtype \"{}\"", t.dtype_name));
  t.dtype = safetensors_dtype_from_name(t.dtype_name);

  auto sh = v.find("shape");
  if (sh == v.end() || !sh->is_array()) bad("no \"shape\" array");
  uint64_t n = 1;
  for (const auto& d : *sh) {
    if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
      bad(fmt::format("shape {} has an entry that is not a non-negative integer", sh->dump()));
    const uint64_t x = d.get<uint64_t>();
    if (x > (uint64_t(1) << 40) || __builtin_mul_overflow(n, x, &n)) bad(fmt::format("shape {} is too large", sh->dump()));
    t.shape.push_back(int64_t(x));
  }
  if (sh->size() > 8) bad(fmt::format("shape {} has more than 8 dimensions", sh->dump()));

  auto off = v.find("data_offsets");
  if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned())
    bad("no \"data_offsets\": [begin, end] of non-negative integers");
  const uint64_t begin = (*off)[0].get<uint64_t>(), end = (*off)[1].get<uint64_t>();
  if (begin > end) bad(fmt::format("data_offsets [{}, {}]: begin is after end", begin, end));
  if (end > buffer_bytes)
    bad(fmt::format("data_offsets [{}, {}] run past the end of the data ({} bytes): the file is truncated", begin, end,
                    buffer_bytes));
  uint64_t want = 0;
  if (__builtin_mul_overflow(n, uint64_t(elem), &want) || want != end - begin)
    bad(fmt::format("{} × shape {} needs {} bytes, data_offsets [{}, {}] hold {}", t.dtype_name, shape_str(t.shape),
                    n * elem, begin, end, end - begin));
  t.offset = begin;  // made absolute by the caller
  t.nbytes = size_t(end - begin);
  return t;
}

SafetensorsHeader parse_header(const std::string& path, const char* json, size_t n, size_t file_size) {
  SafetensorsHeader h;
  h.path = path;
  h.file_size = file_size;
  h.data_offset = 8 + n;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json, json + n);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: the safetensors header is not valid JSON: {}", path, e.what());
  }
  if (!j.is_object()) fail("{}: the safetensors header is not a JSON object", path);
  const size_t buffer_bytes = file_size - h.data_offset;
  for (const auto& [key, v] : j.items()) {
    if (key == "__metadata__") {
      if (!v.is_object()) fail("{}: \"__metadata__\" is not an object", path);
      for (const auto& [mk, mv] : v.items()) {
        if (!mv.is_string()) fail("{}: \"__metadata__\" value of '{}' is not a string", path, mk);
        h.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    h.tensors.push_back(parse_entry(path, key, v, buffer_bytes));
    h.tensors.back().offset += h.data_offset;
  }
  std::sort(h.tensors.begin(), h.tensors.end(),
            [](const SafetensorsTensor& a, const SafetensorsTensor& b) { return a.offset < b.offset; });
  for (size_t i = 1; i < h.tensors.size(); ++i) {
    const auto &a = h.tensors[i - 1], &b = h.tensors[i];
    if (b.offset < a.offset + a.nbytes) fail("{}: tensors '{}' and '{}' overlap in the data", path, a.name, b.name);
  }
  return h;
}

void pread_all(int fd, const std::string& path, void* dst, size_t n, uint64_t at, const char* what) {
  size_t got = 0;
  while (got < n) {
    const ssize_t k = ::pread(fd, static_cast<char*>(dst) + got, n - got, off_t(at + got));
    if (k < 0) fail("{}: cannot read {}: {}", path, what, std::strerror(errno));
    if (k == 0) fail("{}: file is truncated: {} ends at byte {}", path, what, at + got);
    got += size_t(k);
  }
}

// The first 8 bytes: the header length, checked against the file size.
uint64_t header_length(const std::string& path, const uint8_t* first8, size_t file_size) {
  if (file_size < 8) fail("{}: file is truncated: {} bytes, a safetensors file starts with an 8-byte header length", path, file_size);
  uint64_t n;
  std::memcpy(&n, first8, 8);
  if (n < 2 || n > kMaxHeaderBytes)
    fail("{}: not a safetensors file: header length {} (expected 2 .. {} bytes)", path, n, kMaxHeaderBytes);
  if (n > file_size - 8) fail("{}: file is truncated: the header needs {} bytes, {} left", path, n, file_size - 8);
  return n;
}

}  // namespace

size_t safetensors_dtype_size(SafetensorsDtype t) {
  switch (t) {
    case SafetensorsDtype::F32: return 4;
    case SafetensorsDtype::F16:
    case SafetensorsDtype::BF16: return 2;
    default: return 0;
  }
}

SafetensorsDtype safetensors_dtype_from_name(const std::string& name) {
  if (name == "F32") return SafetensorsDtype::F32;
  if (name == "F16") return SafetensorsDtype::F16;
  if (name == "BF16") return SafetensorsDtype::BF16;
  return SafetensorsDtype::Other;
}

const char* safetensors_dtype_name(SafetensorsDtype t) {
  switch (t) {
    case SafetensorsDtype::F32: return "F32";
    case SafetensorsDtype::F16: return "F16";
    case SafetensorsDtype::BF16: return "BF16";
    default: return "other";
  }
}

void safetensors_to_float(SafetensorsDtype t, const uint8_t* src, float* dst, int64_t n) {
  switch (t) {
    case SafetensorsDtype::F32: std::memcpy(dst, src, size_t(n) * 4); return;
    case SafetensorsDtype::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(uint16_t(src[2 * i] | (src[2 * i + 1] << 8)));
      return;
    case SafetensorsDtype::BF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(uint16_t(src[2 * i] | (src[2 * i + 1] << 8)));
      return;
    default: QT_CHECK(false, "safetensors_to_float: not a float dtype");
  }
}

const SafetensorsTensor* SafetensorsHeader::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

SafetensorsHeader read_safetensors_header(const std::string& path) {
  size_t size = 0;
  const int fd = open_for_reading(path, &size);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  uint8_t first8[8] = {};
  if (size >= 8) pread_all(fd, path, first8, 8, 0, "the header length");
  const uint64_t n = header_length(path, first8, size);
  std::string json(n, '\0');
  pread_all(fd, path, json.data(), n, 8, "the header");
  return parse_header(path, json.data(), n, size);
}

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(std::make_unique<MappedFile>(path)) {
  const uint64_t n = header_length(path, file_->data(), file_->size());
  header_ = parse_header(path, reinterpret_cast<const char*>(file_->data() + 8), n, file_->size());
}

Tensor SafetensorsFile::to_float(const std::string& name) const {
  const SafetensorsTensor* t = find(name);
  if (!t) fail("{}: no tensor '{}'", path(), name);
  if (t->dtype == SafetensorsDtype::Other)
    fail("{}: tensor '{}' is {}, not a float dtype (F32, F16, BF16)", path(), name, t->dtype_name);
  Tensor out(t->shape);
  safetensors_to_float(t->dtype, bytes(*t), out.ptr(), t->numel());
  return out;
}

void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& entries,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = m;
  }
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& e : entries) {
    if (e.name == "__metadata__" || !seen.insert(e.name).second)
      fail("{}: cannot write tensor '{}': the name is taken", path, e.name);
    if (e.dtype == SafetensorsDtype::Other) fail("{}: cannot write tensor '{}': not a float dtype", path, e.name);
    if (!e.data && numel(e.shape) > 0) fail("{}: cannot write tensor '{}': no data", path, e.name);
    const uint64_t nbytes = uint64_t(numel(e.shape)) * safetensors_dtype_size(e.dtype);
    header[e.name] = {{"dtype", safetensors_dtype_name(e.dtype)},
                      {"shape", e.shape},
                      {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // the data buffer starts 8-aligned

  AtomicFile out(path);
  out.put<uint64_t>(json.size());
  out.write_str(json);
  std::vector<uint16_t> half;
  for (const auto& e : entries) {
    const int64_t n = numel(e.shape);
    if (e.dtype == SafetensorsDtype::F32) {
      out.write(e.data, size_t(n) * 4);
      continue;
    }
    constexpr int64_t kChunk = 1 << 16;
    half.resize(size_t(std::min(n, kChunk)));
    for (int64_t i = 0; i < n; i += kChunk) {
      const int64_t m = std::min(kChunk, n - i);
      for (int64_t k = 0; k < m; ++k)
        half[k] = e.dtype == SafetensorsDtype::F16 ? fp32_to_fp16(e.data[i + k]) : fp32_to_bf16(e.data[i + k]);
      out.write(half.data(), size_t(m) * 2);
    }
  }
  out.commit();
}

}  // namespace qtune
