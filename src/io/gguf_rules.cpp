// io/gguf_rules.cpp — llama.cpp's loader rules for "llama" model GGUFs (see gguf_rules.h).
#include "io/gguf_rules.h"

#include <map>
#include <set>

#include "io/gguf.h"

namespace qtune {

namespace {

using Violations = std::vector<std::string>;

// llama.cpp's get_key checks the stored type exactly (uint32 is not int32 or uint64).
const GgufValue* typed(const GgufFile& f, const std::string& key, GgufType want, bool required, Violations& v) {
  const GgufValue* x = f.find(key);
  if (!x) {
    if (required) v.push_back(fmt::format("key '{}' is missing", key));
    return nullptr;
  }
  if (x->type != want) {
    v.push_back(fmt::format("key '{}' must be {}, found {}", key, gguf_type_name(want), gguf_type_name(x->type)));
    return nullptr;
  }
  return x;
}

int64_t get_u32(const GgufFile& f, const std::string& key, bool required, Violations& v) {
  const GgufValue* x = typed(f, key, GgufType::UINT32, required, v);
  if (x && x->u == 0) v.push_back(fmt::format("key '{}' must be positive", key));
  return x ? int64_t(x->u) : 0;
}

// A per-layer value: a uint32, or (llama.cpp's get_key_or_arr) an array of n_layer integers.
std::vector<int64_t> per_layer(const GgufFile& f, const std::string& key, int64_t n_layer, bool required,
                               Violations& v) {
  const GgufValue* x = f.find(key);
  if (!x || x->type != GgufType::ARRAY) return std::vector<int64_t>(size_t(n_layer), get_u32(f, key, required, v));
  if ((x->elem_type != GgufType::UINT32 && x->elem_type != GgufType::INT32) || int64_t(x->arr.size()) != n_layer) {
    v.push_back(fmt::format("key '{}': an array must hold {} uint32/int32 values (one per layer)", key, n_layer));
    return std::vector<int64_t>(size_t(n_layer), 0);
  }
  std::vector<int64_t> out;
  for (const auto& e : x->arr) out.push_back(e.type == GgufType::UINT32 ? int64_t(e.u) : e.i);
  return out;
}

struct Hparams {
  int64_t n_embd = 0, n_layer = 0, n_vocab = 0, head_dim = 0;
  std::vector<int64_t> n_ff, n_head, n_head_kv;
};

Hparams read_hparams(const GgufFile& f, Violations& v) {
  const GgufValue* arch = typed(f, "general.architecture", GgufType::STRING, true, v);
  if (arch && arch->str != "llama")
    v.push_back(fmt::format("key 'general.architecture' is '{}', not 'llama'", excerpt(arch->str)));
  Hparams h;
  const std::string p = "llama.";
  get_u32(f, p + "context_length", true, v);
  h.n_embd = get_u32(f, p + "embedding_length", true, v);
  h.n_layer = get_u32(f, p + "block_count", true, v);
  if (h.n_layer > int64_t(f.tensors().size())) {  // also bounds the per-layer tables below
    v.push_back(fmt::format("key 'llama.block_count' = {}, but the file holds only {} tensors", h.n_layer,
                            f.tensors().size()));
    h.n_layer = 0;
  }
  h.n_ff = per_layer(f, p + "feed_forward_length", h.n_layer, true, v);
  h.n_head = per_layer(f, p + "attention.head_count", h.n_layer, true, v);
  h.n_head_kv = f.has(p + "attention.head_count_kv") ? per_layer(f, p + "attention.head_count_kv", h.n_layer, true, v)
                                                      : h.n_head;
  typed(f, p + "attention.layer_norm_rms_epsilon", GgufType::FLOAT32, true, v);
  typed(f, p + "rope.freq_base", GgufType::FLOAT32, false, v);
  const int64_t heads = h.n_head.empty() ? 0 : h.n_head[0];
  h.head_dim = f.has(p + "attention.key_length") ? get_u32(f, p + "attention.key_length", true, v)
               : heads > 0                       ? h.n_embd / heads
                                                 : 0;
  if (heads > 0 && !f.has(p + "attention.key_length") && h.n_embd % heads)
    v.push_back(fmt::format("embedding_length {} is not a multiple of head_count {}", h.n_embd, heads));
  if (f.has(p + "rope.dimension_count")) {
    const int64_t n_rot = get_u32(f, p + "rope.dimension_count", true, v);
    if (n_rot && n_rot != h.head_dim)
      v.push_back(fmt::format("key 'llama.rope.dimension_count' = {}: llama.cpp requires the head size {}", n_rot,
                              h.head_dim));
  }
  if (f.has(p + "vocab_size")) h.n_vocab = get_u32(f, p + "vocab_size", true, v);
  return h;
}

// llama-vocab.cpp: tokenizer.ggml.model and .tokens are required, the rest typed if present.
void check_vocab(const GgufFile& f, Hparams& h, Violations& v) {
  typed(f, "tokenizer.ggml.model", GgufType::STRING, true, v);
  const GgufValue* tokens = typed(f, "tokenizer.ggml.tokens", GgufType::ARRAY, true, v);
  if (!tokens) return;
  const int64_t n = int64_t(tokens->arr.size());
  if (tokens->elem_type != GgufType::STRING || n == 0) v.push_back("key 'tokenizer.ggml.tokens' must be a non-empty array of strings");
  if (h.n_vocab && h.n_vocab != n)
    v.push_back(fmt::format("key 'llama.vocab_size' = {} but tokenizer.ggml.tokens has {} tokens", h.n_vocab, n));
  if (!h.n_vocab) h.n_vocab = n;
  for (auto [key, elem] : {std::pair<const char*, GgufType>{"tokenizer.ggml.scores", GgufType::FLOAT32},
                           {"tokenizer.ggml.token_type", GgufType::INT32}})
    if (const GgufValue* a = typed(f, key, GgufType::ARRAY, false, v))
      if (a->elem_type != elem || int64_t(a->arr.size()) != n)
        v.push_back(fmt::format("key '{}' must be an array of {} {} values", key, n, gguf_type_name(elem)));
  for (const char* id : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"})
    if (const GgufValue* x = typed(f, id, GgufType::UINT32, false, v))
      if (int64_t(x->u) >= n) v.push_back(fmt::format("key '{}' = {} is not a token id (< {})", id, x->u, n));
}

// Tensor name → ne as llama.cpp creates it (innermost first); `required` false for optional ones.
struct Expected {
  std::vector<int64_t> ne;
  bool required = true;
};

std::map<std::string, Expected> llama_tensors(const Hparams& h) {
  std::map<std::string, Expected> t;
  t["token_embd.weight"] = {{h.n_embd, h.n_vocab}};
  t["output_norm.weight"] = {{h.n_embd}};
  t["output.weight"] = {{h.n_embd, h.n_vocab}, false};  // absent: tied to token_embd
  t["rope_freqs.weight"] = {{h.head_dim / 2}, false};
  for (int64_t l = 0; l < h.n_layer; l++) {
    auto n = [l](const char* w) { return fmt::format("blk.{}.{}.weight", l, w); };
    const int64_t q = h.head_dim * h.n_head[l], kv = h.head_dim * h.n_head_kv[l], ff = h.n_ff[l];
    t[n("attn_norm")] = {{h.n_embd}};
    t[n("attn_q")] = {{h.n_embd, q}};
    t[n("attn_k")] = {{h.n_embd, kv}};
    t[n("attn_v")] = {{h.n_embd, kv}};
    t[n("attn_output")] = {{q, h.n_embd}};
    t[n("ffn_norm")] = {{h.n_embd}};
    t[n("ffn_gate")] = {{h.n_embd, ff}};
    t[n("ffn_down")] = {{ff, h.n_embd}};
    t[n("ffn_up")] = {{h.n_embd, ff}};
  }
  return t;
}

}  // namespace

void check_llamacpp_layout(const GgufFile& f, std::vector<std::string>& v) {
  uint64_t expect = 0;
  for (const auto& t : f.tensors()) {
    if (t.offset != expect || t.offset % f.alignment() != 0)
      v.push_back(fmt::format("tensor '{}': offset {} is not the sequential, aligned offset {}", t.name, t.offset,
                              expect));
    if (f.data_offset() + t.offset + t.nbytes > f.file_size())
      v.push_back(fmt::format("tensor '{}': data runs past the end of the file", t.name));
    expect = (t.offset + t.nbytes + f.alignment() - 1) / f.alignment() * f.alignment();
  }
}

std::vector<std::string> check_llamacpp_model_rules(const GgufFile& f) {
  Violations v;
  check_llamacpp_layout(f, v);
  for (const auto& t : f.tensors()) {
    const auto& info = ggml_type_info(t.type);
    if (t.ne[0] % info.block_size)
      v.push_back(fmt::format("tensor '{}': row length {} is not a multiple of the {} block size {}", t.name,
                              t.ne[0], info.name, info.block_size));
  }
  Hparams h = read_hparams(f, v);
  check_vocab(f, h, v);
  if (h.n_embd == 0 || h.n_layer == 0 || h.head_dim == 0 || h.n_vocab == 0) return v;  // shapes unknowable
  for (const auto& [name, want] : llama_tensors(h)) {
    const GgufTensorInfo* t = f.find_tensor(name);
    if (!t) {
      if (want.required) v.push_back(fmt::format("tensor '{}' is missing", name));
      continue;
    }
    if (t->ne != want.ne)
      v.push_back(fmt::format("tensor '{}': ne = [{}], llama.cpp expects [{}]", name, fmt::join(t->ne, ", "),
                              fmt::join(want.ne, ", ")));
  }
  return v;
}

std::vector<std::string> llamacpp_unsupported(const GgufFile& f) {
  Violations ignored;
  Hparams h = read_hparams(f, ignored);
  std::set<std::string> known;
  for (const auto& [name, e] : llama_tensors(h)) known.insert(name);
  std::vector<std::string> why;
  for (const auto& t : f.tensors()) {
    if (is_int_type(t.type))
      why.push_back(fmt::format("tensor '{}' is {}: ggml has no matrix multiplication for integer weights", t.name,
                                ggml_type_info(t.type).name));
    if (!known.count(t.name))
      why.push_back(fmt::format("tensor '{}' is not a llama tensor (llama.cpp stops: wrong number of tensors)",
                                t.name));
  }
  return why;
}

}  // namespace qtune
