// fuzz/seed_data.cpp — see seed_data.h.
#include "fuzz/seed_data.h"

#include <cstring>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "core/rng.h"

namespace qtune::fuzz {

namespace {

const std::string kSpace = "\xe2\x96\x81";  // "▁"

// Words and merges ("▁" is kSpace) for the vocabularies: enough for merges to happen on ordinary text.
const char* const kWords[] = {"▁", "a", "b", "c", "e", "h", "t", "ab", "bc", "▁a", "▁ab", "▁t", "he", "▁the", "é", "▁é",
                              "日", "<", ">", "s", "<s"};

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t i = s.find(from); i != std::string::npos; i = s.find(from, i + to.size())) s.replace(i, from.size(), to);
  return s;
}

// Protobuf wire format, just what a ModelProto needs.
void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += char(uint8_t(v) | 0x80);
    v >>= 7;
  }
  out += char(uint8_t(v));
}
void tag(std::string& out, int field, int wire) { varint(out, uint64_t(field) << 3 | uint64_t(wire)); }
void field_varint(std::string& out, int field, uint64_t v) {
  tag(out, field, 0);
  varint(out, v);
}
void field_bytes(std::string& out, int field, const std::string& b) {
  tag(out, field, 2);
  varint(out, b.size());
  out += b;
}
void field_float(std::string& out, int field, float f) {
  tag(out, field, 5);
  char b[4];
  std::memcpy(b, &f, 4);
  out.append(b, 4);
}

}  // namespace

ModelFile tiny_model(int dim, int hidden, int vocab, bool tied, uint32_t seed) {
  ModelFile m;
  LlamaConfig& c = m.config;
  c.dim = dim, c.hidden_dim = hidden, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 1, c.vocab_size = vocab;
  c.seq_len = 8, c.tied_classifier = tied;
  m.path = "seed";
  Rng rng(seed);
  auto add = [&](const std::string& name, Shape s) {
    Tensor t(std::move(s));
    for (auto& v : t.data) v = float(rng.next_u64() % 2001) / 1000.0f - 1.0f;
    m.tensors.emplace(name, std::move(t));
  };
  const int64_t D = dim, H = hidden, KV = c.kv_dim();
  add("token_embd.weight", {vocab, D});
  add("output_norm.weight", {D});
  if (!tied) add("output.weight", {vocab, D});
  auto n = [](const char* w) { return fmt::format("blk.0.{}.weight", w); };
  add(n("attn_norm"), {D});
  add(n("ffn_norm"), {D});
  add(n("attn_q"), {D, D});
  add(n("attn_k"), {KV, D});
  add(n("attn_v"), {KV, D});
  add(n("attn_output"), {D, D});
  add(n("ffn_gate"), {H, D});
  add(n("ffn_down"), {D, H});
  add(n("ffn_up"), {H, D});
  return m;
}

GgufVocab tiny_vocab(bool byte_tokens) {
  GgufVocab v;
  auto add = [&](std::string t, float score, int type) {
    v.tokens.push_back(std::move(t));
    v.scores.push_back(score);
    v.types.push_back(type);
  };
  add("<unk>", 0, 2);
  add("<s>", 0, 3);
  add("</s>", 0, 3);
  if (byte_tokens)
    for (int b = 0; b < 256; ++b) add(fmt::format("<0x{:02X}>", b), 0, 6);
  float score = -1;
  for (const char* w : kWords) add(w, score -= 0.5f, 1);
  return v;
}

void llama2c_pieces(bool byte_tokens, std::vector<std::string>& pieces, std::vector<float>& scores) {
  GgufVocab v = tiny_vocab(byte_tokens);
  pieces.clear();
  for (const auto& t : v.tokens) pieces.push_back(replace_all(t, kSpace, " "));
  scores = v.scores;
}

std::string tokenizer_bin(const std::vector<std::string>& pieces, const std::vector<float>& scores) {
  std::string out;
  auto put = [&](const void* p, size_t n) { out.append(static_cast<const char*>(p), n); };
  int32_t max_len = 0;
  for (const auto& p : pieces) max_len = std::max(max_len, int32_t(p.size()));
  put(&max_len, 4);
  for (size_t i = 0; i < pieces.size(); ++i) {
    const int32_t len = int32_t(pieces[i].size());
    put(&scores[i], 4);
    put(&len, 4);
    out += pieces[i];
  }
  return out;
}

std::string spm_model(bool bpe, bool byte_tokens) {
  const GgufVocab v = tiny_vocab(byte_tokens);
  std::string model;
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    std::string piece;
    field_bytes(piece, 1, v.tokens[i]);
    field_float(piece, 2, v.scores[i]);
    field_varint(piece, 3, uint64_t(v.types[i]));  // the GGUF token types are SentencePiece's enum
    field_bytes(model, 1, piece);
  }
  std::string trainer;
  field_varint(trainer, 3, bpe ? 2 : 1);  // model_type: UNIGRAM = 1, BPE = 2
  field_varint(trainer, 4, v.tokens.size());
  field_varint(trainer, 35, byte_tokens ? 1 : 0);  // byte_fallback
  field_bytes(model, 2, trainer);
  std::string normalizer;
  field_bytes(normalizer, 1, "identity");
  field_varint(normalizer, 3, 1);  // add_dummy_prefix
  field_varint(normalizer, 4, 0);  // remove_extra_whitespaces
  field_varint(normalizer, 5, 1);  // escape_whitespaces
  field_bytes(model, 3, normalizer);
  return model;
}

CheckpointModel::CheckpointModel() {
  auto add = [&](std::vector<Param<float>>& to, const std::string& name, Shape shape) {
    const int64_t n = numel(shape);
    storage.emplace_back(size_t(n), 0.25f);
    float* value = storage.back().data();
    storage.emplace_back(size_t(n), 0.0f);
    to.push_back({name, value, storage.back().data(), n, std::move(shape)});
  };
  storage.reserve(6);  // the params point into storage: no reallocation
  add(params, "blk.0.attn_q.lora_a", {2, 8});
  add(params, "blk.0.attn_q.lora_b", {8, 2});
  add(state, "blk.0.attn_q.act_amax", {1});
}

PeftLora tiny_peft(const LlamaConfig& base) {
  PeftLora a;
  a.rank = 2;
  a.alpha = 4;
  a.targets = {"q", "v"};
  a.base_model = "seed";
  Rng rng(5);
  auto add = [&](const std::string& name, Shape s) {
    Tensor t(std::move(s));
    for (auto& v : t.data) v = float(rng.next_u64() % 2001) / 1000.0f - 1.0f;
    a.adapters.emplace(name, std::move(t));
  };
  for (int l = 0; l < base.n_layers; ++l) {
    const std::string q = fmt::format("blk.{}.attn_q", l), v = fmt::format("blk.{}.attn_v", l);
    add(q + ".lora_a", {a.rank, base.dim});
    add(q + ".lora_b", {int64_t(base.n_heads) * base.head_dim(), a.rank});
    add(v + ".lora_a", {a.rank, base.dim});
    add(v + ".lora_b", {base.kv_dim(), a.rank});
  }
  return a;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  QT_CHECK(out.good(), "{}: cannot write", path);
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  QT_CHECK(in.good(), "{}: cannot read", path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace qtune::fuzz
