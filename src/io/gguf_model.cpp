// io/gguf_model.cpp — LLaMA models in GGUF: config keys, tensor order, float and integer weights.
#include "io/gguf_model.h"

#include <cmath>
#include <algorithm>
#include <cstdio>
#include <map>
#include <unordered_set>

#include "io/gguf.h"
#include "io/gguf_act.h"
#include "io/llama2c.h"  // check_llama_config

namespace qtune {

namespace {

// llama_ftype for a file whose 2-D weights are mostly `t` (llama.h LLAMA_FTYPE_*).
uint32_t file_type_of(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return 0;
    case GgmlType::F16: return 1;
    case GgmlType::Q4_0: return 2;
    case GgmlType::Q4_1: return 3;
    case GgmlType::Q8_0: return 7;
    case GgmlType::BF16: return 32;
    default: fail("GGUF model weights cannot be stored as {}", ggml_type_info(t).name);
  }
}

// Tensor names of a LLaMA model in file order: embeddings, final norm, classifier, blocks.
std::vector<std::string> model_tensor_names(const LlamaConfig& c) {
  std::vector<std::string> names = {"token_embd.weight", "output_norm.weight"};
  if (!c.tied_classifier) names.push_back("output.weight");
  static const char* per_layer[] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                    "ffn_norm", "ffn_gate", "ffn_down", "ffn_up"};
  for (int l = 0; l < c.n_layers; l++)
    for (const char* w : per_layer) names.push_back(fmt::format("blk.{}.{}.weight", l, w));
  return names;
}

// A positive int config value (any integer GGUF type).
int get_pos_int(const GgufFile& f, const std::string& key) {
  int32_t v = f.get_i32(key);
  QT_CHECK(v > 0, "{}: key '{}': {} must be positive", f.path(), key, v);
  return v;
}

LlamaConfig read_config(const GgufFile& f) {
  const std::string arch = f.get_str("general.architecture");
  QT_CHECK(arch == "llama", "{}: key 'general.architecture': '{}' is not supported (only 'llama')", f.path(),
           excerpt(arch));
  const std::string p = "llama.";
  LlamaConfig c;
  c.seq_len = get_pos_int(f, p + "context_length");
  c.dim = get_pos_int(f, p + "embedding_length");
  c.n_layers = get_pos_int(f, p + "block_count");
  c.hidden_dim = get_pos_int(f, p + "feed_forward_length");
  c.n_heads = get_pos_int(f, p + "attention.head_count");
  c.n_kv_heads = f.has(p + "attention.head_count_kv") ? get_pos_int(f, p + "attention.head_count_kv") : c.n_heads;
  c.norm_eps = f.get_f32(p + "attention.layer_norm_rms_epsilon");
  c.rope_theta = f.get_f32_or(p + "rope.freq_base", 10000.0f);
  QT_CHECK(c.norm_eps > 0 && c.rope_theta > 0, "{}: layer_norm_rms_epsilon and rope.freq_base must be positive",
           f.path());
  const GgufTensorInfo* emb = f.find_tensor("token_embd.weight");
  QT_CHECK(emb, "{}: tensor 'token_embd.weight': missing", f.path());
  if (f.has("tokenizer.ggml.tokens"))
    c.vocab_size = int(f.get_arr_str("tokenizer.ggml.tokens").size());
  else if (f.has(p + "vocab_size"))
    c.vocab_size = get_pos_int(f, p + "vocab_size");
  else
    c.vocab_size = emb->ne.size() == 2 ? int(emb->ne[1]) : 0;
  c.tied_classifier = f.find_tensor("output.weight") == nullptr;
  // Before anything is sized by it: block_count = 2^31 − 1 would list 19 billion tensor names.
  check_llama_config(c, f.path());
  return c;
}

// "blk.N.attn_q" names a projection of this model.
bool is_model_stem(const LlamaConfig& c, const std::string& stem) {
  const std::string name = stem + ".weight";
  if (!is_projection_name(name)) return false;
  const auto names = model_tensor_names(c);
  return std::find(names.begin(), names.end(), name) != names.end();
}

void read_act(const GgufFile& f, ModelFile& m) {
  ActSetting a = read_act_keys(f, [&](const std::string& stem) { return is_model_stem(m.config, stem); });
  QT_CHECK(a.tables.empty(), "{}: per-sampling-step activation tables (qtune.act.table.*) belong to a diffusion "
           "model, not a LLaMA", f.path());
  m.act_bits = a.bits;
  m.act_scales = std::move(a.scales);
}

// A tensor qtune would not read is an error, not silently ignored: an extra block (block_count
// too small), a bias or any other tensor qtune's llama does not compute with would make the
// model qtune runs differ from the file (llama.cpp also refuses a file with extra tensors).
// "<stem>.scale" tensors are check_int_extras' business.
void check_known_tensors(const GgufFile& f, const LlamaConfig& c) {
  const auto names = model_tensor_names(c);
  const std::unordered_set<std::string> known(names.begin(), names.end());
  for (const auto& t : f.tensors()) {
    if (known.count(t.name) || t.name.ends_with(".scale")) continue;
    int layer = -1;
    if (std::sscanf(t.name.c_str(), "blk.%d.", &layer) == 1 && layer >= c.n_layers)
      fail("{}: tensor '{}': there is no block {} (llama.block_count is {})", f.path(), excerpt(t.name), layer,
           c.n_layers);
    fail("{}: tensor '{}' is not a tensor of a llama model (qtune would ignore it)", f.path(), excerpt(t.name));
  }
}

}  // namespace

namespace {

// lazy: float tensors are described in m.lazy (read later through m.source), not read.
ModelFile read_gguf_model(const GgufFile& f, bool lazy) {
  ModelFile m;
  m.path = f.path();
  m.format = "gguf";
  m.config = read_config(f);
  check_known_tensors(f, m.config);
  std::vector<std::string> int_names;
  for (const auto& name : model_tensor_names(m.config)) {
    const GgufTensorInfo* t = f.find_tensor(name);
    QT_CHECK(t, "{}: tensor '{}': missing", f.path(), name);
    if (t->type != GgmlType::F32) m.stored_types[name] = ggml_type_info(t->type).name;
    if (is_projection_name(name) && is_int_weight_type(t->type)) {
      m.quantized.emplace(name, read_int_weight(f, *t));
      int_names.push_back(name);
      continue;
    }
    QT_CHECK(!is_int_type(t->type), "{}: tensor '{}': type {} is only for the projections of a block", f.path(), name,
             ggml_type_info(t->type).name);
    if (lazy)
      m.lazy.emplace(name, LazyTensor{t->shape(), t->type, f.data_offset() + t->offset, t->nbytes});
    else
      m.tensors.emplace(name, f.to_float(*t));
    const bool block = t->type == GgmlType::Q8_0 || t->type == GgmlType::Q4_0 || t->type == GgmlType::Q4_1;
    if (block && name == (m.config.tied_classifier ? "token_embd.weight" : "output.weight")) {
      // the float copy names a non-finite element, as for every tensor (a lazy file: a transient
      // copy, no larger than the float classifier the model holds anyway)
      check_finite(f.path(), name, lazy ? f.to_float(*t) : m.tensors.at(name));
      m.classifier_blocks = read_int_weight(f, *t);
    }
  }
  if (!m.lazy.empty()) m.source = std::make_shared<LazySource>(f.path(), f.file_size());
  check_int_extras(f, int_names);
  read_act(f, m);
  validate_model(m);  // shapes against the config, naming the file and the tensor
  return m;
}

}  // namespace

ModelFile load_gguf_model(const GgufFile& f) { return read_gguf_model(f, false); }

ModelFile load_gguf_model(const std::string& path) {
  GgufFile f(path);
  return load_gguf_model(f);
}

// The mapping is dropped on return: only the header's pages were touched.
ModelFile open_gguf_model(const std::string& path) {
  GgufFile f(path);
  return read_gguf_model(f, true);
}

namespace {

void write_config(GgufWriter& w, const LlamaConfig& c, const GgufSaveOptions& o) {
  w.set_str("general.architecture", "llama");
  w.set_str("general.name", o.name);
  w.set_u32("general.file_type", file_type_of(o.weight_type));
  w.set_u32("general.alignment", 32);
  w.set_u32("llama.context_length", uint32_t(c.seq_len));
  w.set_u32("llama.embedding_length", uint32_t(c.dim));
  w.set_u32("llama.block_count", uint32_t(c.n_layers));
  w.set_u32("llama.feed_forward_length", uint32_t(c.hidden_dim));
  w.set_u32("llama.attention.head_count", uint32_t(c.n_heads));
  w.set_u32("llama.attention.head_count_kv", uint32_t(c.n_kv_heads));
  w.set_f32("llama.attention.layer_norm_rms_epsilon", c.norm_eps);
  w.set_f32("llama.rope.freq_base", c.rope_theta);
  w.set_u32("llama.rope.dimension_count", uint32_t(c.head_dim()));
  w.set_u32("llama.vocab_size", uint32_t(c.vocab_size));
}

void write_vocab(GgufWriter& w, const GgufVocab& v, int vocab_size) {
  size_t n = v.tokens.size();
  QT_CHECK(int(n) == vocab_size, "vocabulary has {} tokens, the model {}", n, vocab_size);
  QT_CHECK(v.scores.size() == n && v.types.size() == n, "vocabulary: {} tokens but {} scores and {} types", n,
           v.scores.size(), v.types.size());
  w.set_str("tokenizer.ggml.model", "llama");
  w.set_arr_str("tokenizer.ggml.tokens", v.tokens);
  w.set_arr_f32("tokenizer.ggml.scores", v.scores);
  w.set_arr_i32("tokenizer.ggml.token_type", v.types);
  w.set_u32("tokenizer.ggml.bos_token_id", uint32_t(v.bos));
  w.set_u32("tokenizer.ggml.eos_token_id", uint32_t(v.eos));
  w.set_u32("tokenizer.ggml.unknown_token_id", uint32_t(v.unk));
  w.set_bool("tokenizer.ggml.add_space_prefix", v.add_space_prefix);
}

void write_act(GgufWriter& w, const ModelFile& m, const std::string& path) {
  write_act_keys(w, path, {m.act_bits, m.act_scales, {}}, [&](const std::string& stem) { return is_model_stem(m.config, stem); });
}

// general.file_type for a model with integer weights: the block type holding most of them
// (llama.cpp only prints it); the float weights' type when none is a block type.
uint32_t int_file_type(const ModelFile& m, const std::vector<GgufIntReport>& ints, GgmlType float_type) {
  std::map<GgmlType, int64_t> elems;
  for (const auto& r : ints)
    if (!is_int_type(r.type)) elems[r.type] += m.quantized.at(r.name)[0].rows * m.quantized.at(r.name)[0].cols;
  GgmlType best = float_type;
  int64_t most = 0;
  for (const auto& [t, n] : elems)
    if (n > most) most = n, best = t;
  return file_type_of(best);
}

void llamacpp_verdict(GgufSaveReport& r, bool has_vocab) {
  for (const auto& q : r.int_weights)
    if (is_int_type(q.type))
      r.llamacpp_reasons.push_back(fmt::format("'{}' is {} with a .scale tensor ({})", q.name,
                                               ggml_type_info(q.type).name, q.not_block));
  if (!has_vocab) r.llamacpp_reasons.push_back("no vocabulary (tokenizer.ggml.*): llama.cpp needs it in the file");
  r.llamacpp_loadable = r.llamacpp_reasons.empty();
}

}  // namespace

void write_model_gguf_stream(const LlamaConfig& c, const std::string& path, const GgufSaveOptions& o,
                             const std::vector<TensorSpec>& order,
                             const std::function<void(size_t i, float* dst, int64_t n)>& fill) {
  check_llama_config(c, path);
  std::map<std::string, Shape> want;
  for (const auto& t : model_tensor_specs(c)) want.emplace(t.name, t.shape);
  std::vector<GgufTensorDecl> decls;
  for (const auto& t : order) {
    auto it = want.find(t.name);
    QT_CHECK(it != want.end() && it->second == t.shape, "{}: tensor {} {} is not one of the model's (or given twice)",
             path, t.name, shape_str(t.shape));
    want.erase(it);
    decls.push_back({t.name, std::vector<int64_t>(t.shape.rbegin(), t.shape.rend()), GgmlType::F32});
  }
  QT_CHECK(want.empty(), "{}: tensor {} is missing from the write order", path, want.begin()->first);
  GgufWriter meta;
  GgufSaveOptions f32 = o;
  f32.weight_type = GgmlType::F32;
  write_config(meta, c, f32);
  if (o.vocab) write_vocab(meta, *o.vocab, c.vocab_size);
  GgufStreamWriter w(path, meta, std::move(decls));
  constexpr int64_t kPiece = int64_t(1) << 20;  // floats per piece (4 MiB)
  std::vector<float> buf(static_cast<size_t>(kPiece));
  for (size_t i = 0; i < order.size(); ++i)
    for (int64_t done = 0, n = numel(order[i].shape); done < n; done += kPiece) {
      const int64_t k = std::min(kPiece, n - done);
      fill(i, buf.data(), k);
      w.write(buf.data(), size_t(k) * sizeof(float));
    }
  w.commit();
}

GgufSaveReport save_model_gguf(const ModelFile& m, const std::string& path, const GgufSaveOptions& o) {
  validate_model(m);
  GgufWriter w;
  write_config(w, m.config, o);
  if (o.vocab) write_vocab(w, *o.vocab, m.config.vocab_size);
  GgufSaveReport report;
  const int64_t block = ggml_type_info(o.weight_type).block_size;
  for (const auto& name : model_tensor_names(m.config)) {
    if (auto q = m.quantized.find(name); q != m.quantized.end()) {
      report.int_weights.push_back(add_int_weight(w, path, name, q->second));
      continue;
    }
    const Tensor& t = m.tensors.at(name);
    GgmlType type = GgmlType::F32;  // norms (1-D) always F32
    if (t.shape.size() == 2) {
      bool fits = t.shape[1] % block == 0;  // row length = the innermost dimension
      type = fits ? o.weight_type : GgmlType::F32;
      if (!fits) report.f32_fallback.push_back(name);
    }
    w.add_tensor(name, t, type);
  }
  write_act(w, m, path);
  if (!report.int_weights.empty())
    w.set_u32("general.file_type", int_file_type(m, report.int_weights, o.weight_type));
  llamacpp_verdict(report, o.vocab != nullptr);
  w.write(path);
  return report;
}

}  // namespace qtune
