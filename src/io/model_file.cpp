// io/model_file.cpp — format-independent checks and format sniffing for model files.
#include "io/model_file.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/file.h"
#include "io/gguf_model.h"
#include "io/llama2c.h"
#include "quant/int_planes.h"

namespace qtune {

namespace {

struct Required {
  std::string name;
  Shape shape;
};

// Every tensor a LLaMA model of config c needs, with its shape (io/model_file.h).
std::vector<Required> required_tensors(const LlamaConfig& c) {
  const int64_t D = c.dim, H = c.hidden_dim, V = c.vocab_size, KV = c.kv_dim();
  const int64_t Q = int64_t(c.n_heads) * c.head_dim();
  std::vector<Required> r = {{"token_embd.weight", {V, D}}, {"output_norm.weight", {D}}};
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

}  // namespace

void validate_model(const ModelFile& m) {
  check_llama_config(m.config, m.path);
  for (const auto& [name, planes] : m.quantized) {
    QT_CHECK(!m.tensors.count(name), "{}: tensor {} is both float and integer", m.path, name);
    QT_CHECK(!planes.empty(), "{}: integer tensor {} has no planes", m.path, name);
    QT_CHECK(is_projection_name(name), "{}: tensor {} cannot be integer (only the projections of a block can)",
             m.path, name);
  }
  for (const Required& req : required_tensors(m.config)) {
    if (auto q = m.quantized.find(req.name); q != m.quantized.end()) {
      for (const QuantMatrix& p : q->second)
        QT_CHECK(req.shape.size() == 2 && p.rows == req.shape[0] && p.cols == req.shape[1],
                 "{}: tensor {} has shape [{}, {}], expected {}", m.path, req.name, p.rows, p.cols,
                 shape_str(req.shape));
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

void check_model_finite(const ModelFile& m) {
  for (const auto& [name, t] : m.tensors) check_finite(m.path, name, t);
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

Tensor weight_as_float(const ModelFile& m, const std::string& name) {
  if (auto it = m.tensors.find(name); it != m.tensors.end()) {
    Tensor t(it->second.shape);
    std::copy(it->second.data.begin(), it->second.data.end(), t.data.begin());
    return t;
  }
  auto q = m.quantized.find(name);
  QT_CHECK(q != m.quantized.end() && !q->second.empty(), "{}: tensor {} is missing", m.path, name);
  const QuantMatrix& p0 = q->second.front();
  Tensor t({p0.rows, p0.cols});
  Tensor tmp(q->second.size() > 1 ? Shape{p0.rows, p0.cols} : Shape{0});
  sum_planes(q->second, 0, p0.rows, t.ptr(), tmp.ptr());
  return t;
}

void dequantize_all(ModelFile& m) {
  for (const auto& [name, planes] : m.quantized) m.tensors[name] = weight_as_float(m, name);
  m.quantized.clear();
}

void quantize_projections(ModelFile& m, const QuantSpec& spec) {
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

ModelFile load_model(const std::string& path) {
  const std::string head = read_file_head(path, 4);  // only regular files (core/file.h)
  QT_CHECK(!head.empty(), "{}: file is empty", path);
  // llama2.c v1 starts with the magic; anything else is taken as a legacy header, which
  // load_llama2c validates (header values and exact file size).
  ModelFile m = head == "GGUF" ? load_gguf_model(path) : load_llama2c(path);
  check_model_finite(m);
  return m;
}

}  // namespace qtune
