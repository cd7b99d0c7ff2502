// io/dit_file.cpp — the DiT GGUF (io/dit_file.h, docs/DESIGN.md §11).
#include "io/dit_file.h"

#include <set>

#include "core/error.h"
#include "io/gguf.h"
#include "io/gguf_int.h"
#include "io/model_file.h"

namespace qtune {

void validate(const DitConfig& c) {
  QT_CHECK(c.image > 0 && c.channels > 0 && c.patch > 0, "dit: image {}, channels {} and patch {} must be positive",
           c.image, c.channels, c.patch);
  QT_CHECK(c.image % c.patch == 0, "dit: patch {} does not divide the image size {}", c.patch, c.image);
  QT_CHECK(c.dim > 0 && c.dim % 4 == 0, "dit: dim {} must be a positive multiple of 4 (2-D sin-cos embedding)", c.dim);
  QT_CHECK(c.heads > 0 && c.dim % c.heads == 0, "dit: heads {} do not divide dim {}", c.heads, c.dim);
  QT_CHECK(c.depth > 0 && c.depth <= 1024, "dit: depth {} must be in 1..1024", c.depth);
  QT_CHECK(c.mlp_ratio > 0 && c.mlp_ratio <= 64, "dit: mlp ratio {} must be in 1..64", c.mlp_ratio);
  QT_CHECK(c.num_classes > 0 && c.num_classes <= 1 << 20, "dit: num_classes {} must be positive", c.num_classes);
  QT_CHECK(c.freq_dim > 0 && c.freq_dim % 2 == 0, "dit: freq dim {} must be positive and even", c.freq_dim);
  QT_CHECK(c.norm_eps > 0 && c.norm_eps < 1, "dit: norm eps {} must be in (0, 1)", c.norm_eps);
}

std::vector<std::string> dit_slot_stems(const DitConfig& c) {
  std::vector<std::string> s = {"patch_embd", "t_embd.fc1", "t_embd.fc2"};
  for (int l = 0; l < c.depth; ++l)
    for (const char* p : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_up", "ffn_down", "adaln"})
      s.push_back(fmt::format("blk.{}.{}", l, p));
  s.push_back("output_adaln");
  s.push_back("output");
  return s;
}

std::vector<std::pair<std::string, Shape>> dit_tensor_shapes(const DitConfig& c) {
  const int64_t D = c.dim, P = c.patch_dim(), F = c.freq_dim, H = c.hidden(), K = c.num_classes;
  std::vector<std::pair<std::string, Shape>> out;
  auto linear = [&](const std::string& stem, int64_t o, int64_t i) {
    out.push_back({stem + ".weight", {o, i}});
    out.push_back({stem + ".bias", {o}});
  };
  linear("patch_embd", D, P);
  linear("t_embd.fc1", D, F);
  linear("t_embd.fc2", D, D);
  out.push_back({"y_embd.weight", {K + 1, D}});
  for (int l = 0; l < c.depth; ++l) {
    const std::string b = fmt::format("blk.{}.", l);
    for (const char* p : {"attn_q", "attn_k", "attn_v", "attn_output"}) linear(b + p, D, D);
    linear(b + "ffn_up", H, D);
    linear(b + "ffn_down", D, H);
    linear(b + "adaln", 6 * D, D);
  }
  linear("output_adaln", 2 * D, D);
  linear("output", P, D);
  return out;
}

namespace {

// "<stem>.weight" of every slot: the only tensors that may be integer.
std::set<std::string> slot_weight_names(const DitConfig& c) {
  std::set<std::string> out;
  for (const std::string& stem : dit_slot_stems(c)) out.insert(stem + ".weight");
  return out;
}

}  // namespace

void validate_dit(const DitFile& f) {
  validate(f.config);
  std::set<std::string> expected;
  const std::set<std::string> slot_weights = slot_weight_names(f.config);
  for (const auto& [name, shape] : dit_tensor_shapes(f.config)) {
    expected.insert(name);
    if (auto q = f.quantized.find(name); q != f.quantized.end()) {
      QT_CHECK(slot_weights.count(name), "{}: tensor {} cannot be integer (only the slots' weights can)", f.path,
               name);
      QT_CHECK(!f.tensors.count(name), "{}: tensor {} is both float and integer", f.path, name);
      QT_CHECK(!q->second.empty(), "{}: tensor {} has no integer planes", f.path, name);
      for (const QuantMatrix& p : q->second)
        QT_CHECK(p.rows == shape[0] && p.cols == shape[1], "{}: tensor {} has shape [{}, {}], expected {}", f.path,
                 name, p.rows, p.cols, shape_str(shape));
      continue;
    }
    auto it = f.tensors.find(name);
    QT_CHECK(it != f.tensors.end(), "{}: tensor {} is missing", f.path, name);
    QT_CHECK(it->second.shape == shape, "{}: tensor {} has shape {}, expected {}", f.path, name,
             shape_str(it->second.shape), shape_str(shape));
    check_finite(f.path, name, it->second);
  }
  for (const auto& [name, t] : f.tensors)
    QT_CHECK(expected.count(name), "{}: tensor {} is not part of a DiT of this config", f.path, excerpt(name));
  for (const auto& [name, q] : f.quantized)
    QT_CHECK(expected.count(name), "{}: tensor {} is not part of a DiT of this config", f.path, excerpt(name));
}

Tensor dit_weight_as_float(const DitFile& f, const std::string& name) {
  if (auto t = f.tensors.find(name); t != f.tensors.end()) return t->second;
  auto q = f.quantized.find(name);
  QT_CHECK(q != f.quantized.end(), "{}: tensor {} is missing", f.path, name);
  const int64_t rows = q->second[0].rows, cols = q->second[0].cols;
  Tensor w({rows, cols}), plane({rows, cols});
  for (const QuantMatrix& p : q->second) {
    p.dequantize_rows(0, rows, plane.ptr());
    for (int64_t i = 0; i < w.numel(); ++i) w.ptr()[i] += plane.ptr()[i];
  }
  return w;
}

namespace {

// The GGUF keys of the config, in one list so reader and writer cannot disagree.
template <class V>
void for_each_key(DitConfig& c, V&& v) {
  v("dit.image_size", c.image);
  v("dit.channels", c.channels);
  v("dit.patch_size", c.patch);
  v("dit.embedding_length", c.dim);
  v("dit.block_count", c.depth);
  v("dit.attention.head_count", c.heads);
  v("dit.feed_forward_ratio", c.mlp_ratio);
  v("dit.num_classes", c.num_classes);
  v("dit.timestep_freq_dim", c.freq_dim);
}

}  // namespace

DitFile load_dit(const std::string& path) {
  GgufFile g(path);
  const std::string arch = g.get_str("general.architecture");
  QT_CHECK(arch == "dit", "{}: general.architecture is '{}', expected 'dit'", path, excerpt(arch));
  DitFile f;
  f.path = path;
  for_each_key(f.config, [&](const char* key, int& v) {
    const uint32_t u = g.get_u32(key);
    QT_CHECK(u <= (1u << 30), "{}: key '{}' = {} is out of range", path, key, u);
    v = int(u);
  });
  f.config.norm_eps = g.get_f32("dit.attention.layer_norm_epsilon");
  try {
    validate(f.config);
  } catch (const Error& e) {
    fail("{}: {}", path, e.what());
  }
  const std::set<std::string> slot_weights = slot_weight_names(f.config);
  std::vector<std::string> int_names;
  for (const GgufTensorInfo& t : g.tensors()) {
    if (t.type != GgmlType::F32) f.stored_types[t.name] = ggml_type_info(t.type).name;
    if (slot_weights.count(t.name) && is_int_weight_type(t.type)) {
      f.quantized.emplace(t.name, read_int_weight(g, t));
      int_names.push_back(t.name);
    } else if (!t.name.ends_with(".scale")) {  // ".scale": an integer weight's, checked below
      f.tensors[t.name] = g.to_float(t);
    }
  }
  check_int_extras(g, int_names);
  f.act = read_act_keys(g, [&](const std::string& stem) { return slot_weights.count(stem + ".weight") > 0; });
  validate_dit(f);
  return f;
}

void save_dit(const std::string& path, const DitFile& f) {
  validate_dit(f);
  GgufWriter w;
  w.set_str("general.architecture", "dit");
  DitConfig c = f.config;
  for_each_key(c, [&](const char* key, int& v) { w.set_u32(key, uint32_t(v)); });
  w.set_f32("dit.attention.layer_norm_epsilon", c.norm_eps);
  const std::set<std::string> slot_weights = slot_weight_names(c);
  write_act_keys(w, path, f.act, [&](const std::string& stem) { return slot_weights.count(stem + ".weight") > 0; });
  for (const auto& [name, shape] : dit_tensor_shapes(c)) {
    if (auto q = f.quantized.find(name); q != f.quantized.end())
      add_int_weight(w, path, name, q->second);
    else
      w.add_tensor(name, f.tensors.at(name), GgmlType::F32);
  }
  w.write(path);
}

}  // namespace qtune
