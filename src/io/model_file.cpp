// io/model_file.cpp — format-independent checks and format sniffing for model files.
#include "io/model_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "core/file.h"
#include "io/gguf_model.h"
#include "io/hf_layout.h"
#include "io/hf_model.h"
#include "io/llama2c.h"
#include "quant/int_planes.h"

namespace qtune {

std::vector<TensorSpec> model_tensor_specs(const LlamaConfig& c) {
  const int64_t D = c.dim, H = c.hidden_dim, V = c.vocab_size, KV = c.kv_dim();
  const int64_t Q = int64_t(c.n_heads) * c.head_dim();
  std::vector<TensorSpec> r = {{"token_embd.weight", {V, D}}, {"output_norm.weight", {D}}};
  if (!c.tied_classifier) r.push_back({"output.weight", {V, D}});
  for (int l = 0; l < c.n_layers; ++l) {
    auto n = [l](const char* what) { return fmt::format("blk.{}.{}.weight", l, what); };
    r.push_back({n("attn_norm"), {D}});
    r.push_back({n("attn_q"), {Q, D}});
    r.push_back({n("attn_k"), {KV, D}});
    r.push_back({n("attn_v"), {KV, D}});
    r.push_back({n("attn_output"), {D, Q}});
    r.push_back({n("ffn_norm"), {D}});
    r.push_back({n("ffn_gate"), {H, D}});
    r.push_back({n("ffn_down"), {D, H}});
    r.push_back({n("ffn_up"), {H, D}});
  }
  return r;
}

void validate_model(const ModelFile& m) {
  check_llama_config(m.config, m.path);
  QT_CHECK(m.lazy.empty() || m.source, "{}: lazy tensors without a file to read them from", m.path);
  for (const auto& [name, t] : m.lazy)
    QT_CHECK(!m.tensors.count(name) && !m.quantized.count(name), "{}: tensor {} is stored twice", m.path, name);
  for (const auto& [name, planes] : m.quantized) {
    QT_CHECK(!m.tensors.count(name), "{}: tensor {} is both float and integer", m.path, name);
    QT_CHECK(!planes.empty(), "{}: integer tensor {} has no planes", m.path, name);
    QT_CHECK(is_projection_name(name), "{}: tensor {} cannot be integer (only the projections of a block can)",
             m.path, name);
  }
  for (const TensorSpec& req : model_tensor_specs(m.config)) {
    if (auto q = m.quantized.find(req.name); q != m.quantized.end()) {
      for (const QuantMatrix& p : q->second)
        QT_CHECK(req.shape.size() == 2 && p.rows == req.shape[0] && p.cols == req.shape[1],
                 "{}: tensor {} has shape [{}, {}], expected {}", m.path, req.name, p.rows, p.cols,
                 shape_str(req.shape));
      continue;
    }
    if (auto z = m.lazy.find(req.name); z != m.lazy.end()) {
      QT_CHECK(z->second.shape == req.shape, "{}: tensor {} has shape {}, expected {}", m.path, req.name,
               shape_str(z->second.shape), shape_str(req.shape));
      continue;
    }
    auto it = m.tensors.find(req.name);
    QT_CHECK(it != m.tensors.end(), "{}: required tensor {} is missing", m.path, req.name);
    const Tensor& t = it->second;
    QT_CHECK(t.shape == req.shape, "{}: tensor {} has shape {}, expected {}", m.path, req.name,
             shape_str(t.shape), shape_str(req.shape));
    QT_CHECK(t.data.size() == size_t(t.numel()), "{}: tensor {} holds {} values, its shape needs {}", m.path,
             req.name, t.data.size(), t.numel());
  }
}

void check_finite(const std::string& file, const std::string& name, const Tensor& t) {
  const int64_t i = first_non_finite(t.ptr(), int64_t(t.data.size()));
  if (i >= 0)
    fail("{}: tensor '{}': element {} is {} (weights must be finite)", file, excerpt(name), index_str(t.shape, i),
         t.data[size_t(i)]);
}

namespace {

void check_planes_finite(const ModelFile& m) {
  for (const auto& [name, planes] : m.quantized)
    for (size_t p = 0; p < planes.size(); ++p) {
      const QuantMatrix& q = planes[p];
      const Shape shape = {q.rows, q.groups_per_row()};
      for (const auto* what : {&q.scale, &q.zero}) {
        const int64_t i = first_non_finite(what->data(), int64_t(what->size()));
        if (i >= 0)
          fail("{}: tensor '{}': plane {} {} {} is {} (weights must be finite)", m.path, excerpt(name), p,
               what == &q.scale ? "scale" : "zero point", index_str(shape, i), (*what)[size_t(i)]);
      }
    }
}

}  // namespace

void check_model_finite(const ModelFile& m) {
  for (const auto& [name, t] : m.tensors) check_finite(m.path, name, t);
  for (const auto& [name, t] : m.lazy) read_float(m, name);  // checked as read, then dropped
  check_planes_finite(m);
}

LazySource::LazySource(const std::string& path, size_t expected_size)
    : LazySource(std::vector<FileSize>{{path, expected_size}}) {}

LazySource::LazySource(const std::vector<FileSize>& files) {
  try {
    for (const FileSize& f : files) {
      size_t size = 0;
      files_.push_back({f.path, open_for_reading(f.path, &size)});
      QT_CHECK(size == f.size, "{}: the file changed while it was opened ({} bytes, was {})", f.path, size, f.size);
    }
  } catch (...) {  // no destructor runs for a constructor that throws
    for (const Open& o : files_) ::close(o.fd);
    throw;
  }
}

LazySource::~LazySource() {
  for (const Open& f : files_) ::close(f.fd);
}

void LazySource::read(const std::string& name, const LazyTensor& t, float* dst) const {
  const int64_t n = numel(t.shape);
  QT_ASSERT(t.nbytes == ggml_row_bytes(t.type, n) && t.file >= 0 && size_t(t.file) < files_.size());
  const Open& f = files_[size_t(t.file)];
  // F32 in stored order lands in place; anything else goes through one buffer of its stored size.
  const bool in_place = t.type == GgmlType::F32 && t.hf_head_dim == 0;
  std::vector<uint8_t> raw(in_place ? 0 : t.nbytes);
  uint8_t* buf = in_place ? reinterpret_cast<uint8_t*>(dst) : raw.data();
  size_t got = 0;
  while (got < t.nbytes) {
    const ssize_t k = ::pread(f.fd, buf + got, t.nbytes - got, off_t(t.offset + got));
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) fail("{}: tensor '{}': cannot read: {}", f.path, excerpt(name), std::strerror(errno));
    if (k == 0)
      fail("{}: file is truncated: tensor '{}' needs {} bytes at offset {}, the file ends after {}", f.path,
           excerpt(name), t.nbytes, t.offset, t.offset + got);
    got += size_t(k);
  }
  if (in_place) return;
  if (t.hf_head_dim == 0) {
    dequantize_any(t.type, raw.data(), dst, n);
    return;
  }
  // HF row r holds qtune's row hf_row_source(r): each row converts straight to its place.
  QT_ASSERT(t.shape.size() == 2 && t.shape[0] % t.hf_head_dim == 0 && ggml_type_info(t.type).block_size == 1);
  const int64_t rows = t.shape[0], cols = t.shape[1];
  const size_t row_bytes = ggml_row_bytes(t.type, cols);
  for (int64_t r = 0; r < rows; ++r)
    dequantize_any(t.type, raw.data() + size_t(r) * row_bytes, dst + hf_row_source(r, t.hf_head_dim) * cols, cols);
}

bool has_float(const ModelFile& m, const std::string& name) { return m.tensors.count(name) || m.lazy.count(name); }

const Shape& float_shape(const ModelFile& m, const std::string& name) {
  if (auto it = m.tensors.find(name); it != m.tensors.end()) return it->second.shape;
  auto z = m.lazy.find(name);
  QT_CHECK(z != m.lazy.end(), "{}: tensor {} is missing", m.path, name);
  return z->second.shape;
}

void read_float_into(const ModelFile& m, const std::string& name, float* dst, int64_t n) {
  const Shape& shape = float_shape(m, name);
  QT_CHECK(numel(shape) == n, "{}: tensor {} has {} elements, expected {}", m.path, name, numel(shape), n);
  if (auto it = m.tensors.find(name); it != m.tensors.end()) {
    std::memcpy(dst, it->second.ptr(), size_t(n) * sizeof(float));
    return;
  }
  m.source->read(name, m.lazy.at(name), dst);
  const int64_t i = first_non_finite(dst, n);
  if (i >= 0)
    fail("{}: tensor '{}': element {} is {} (weights must be finite)", m.path, excerpt(name), index_str(shape, i),
         dst[i]);
}

Tensor read_float(const ModelFile& m, const std::string& name) {
  Tensor t(float_shape(m, name));
  read_float_into(m, name, t.ptr(), t.numel());
  return t;
}

void release_weight(ModelFile& m, const std::string& name) {
  m.tensors.erase(name);
  m.quantized.erase(name);
  m.lazy.erase(name);
}

void materialize(ModelFile& m) {
  for (auto it = m.lazy.begin(); it != m.lazy.end();) {
    m.tensors.emplace(it->first, read_float(m, it->first));
    it = m.lazy.erase(it);
  }
  m.source.reset();
}

Tensor weight_as_float(const ModelFile& m, const std::string& name) {
  if (has_float(m, name)) return read_float(m, name);
  auto q = m.quantized.find(name);
  QT_CHECK(q != m.quantized.end() && !q->second.empty(), "{}: tensor {} is missing", m.path, name);
  const QuantMatrix& p0 = q->second.front();
  Tensor t({p0.rows, p0.cols});
  Tensor tmp(q->second.size() > 1 ? Shape{p0.rows, p0.cols} : Shape{0});
  sum_planes(q->second, 0, p0.rows, t.ptr(), tmp.ptr());
  return t;
}

void dequantize_all(ModelFile& m) {
  materialize(m);
  for (const auto& [name, planes] : m.quantized) m.tensors[name] = weight_as_float(m, name);
  m.quantized.clear();
}

void quantize_projections(ModelFile& m, const QuantSpec& spec) {
  materialize(m);
  for (auto it = m.tensors.begin(); it != m.tensors.end();) {
    if (!is_projection_name(it->first)) {
      ++it;
      continue;
    }
    const Tensor& w = it->second;
    std::vector<QuantMatrix> planes;
    planes.push_back(quantize(w.ptr(), w.shape[0], w.shape[1], spec));
    m.quantized[it->first] = std::move(planes);
    it = m.tensors.erase(it);
  }
}

ModelFile open_model(const std::string& path) {
  if (const auto dir = hf_checkpoint_dir(path)) return open_hf_model(*dir);
  const std::string head = read_file_head(path, 4);  // only regular files (core/file.h)
  QT_CHECK(!head.empty(), "{}: file is empty", path);
  // llama2.c v1 starts with the magic; anything else is taken as a legacy header, which
  // open_llama2c validates (header values and exact file size).
  ModelFile m = head == "GGUF" ? open_gguf_model(path) : open_llama2c(path);
  check_planes_finite(m);
  return m;
}

ModelFile load_model(const std::string& path) {
  ModelFile m = open_model(path);
  materialize(m);  // each tensor checked finite as it is read
  return m;
}

}  // namespace qtune
