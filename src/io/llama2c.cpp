// io/llama2c.cpp — llama2.c v0/v1 checkpoint reader and v1 writer.
#include "io/llama2c.h"

#include <cmath>
#include <cstring>
#include <vector>

#include <unistd.h>

#include "core/file.h"

namespace qtune {

namespace {

constexpr size_t kV0HeaderBytes = 7 * sizeof(int32_t);
constexpr size_t kV1HeaderBytes = 256;

// One tensor record in file order. An empty name is a block to skip (the v0 RoPE tables).
struct Slot {
  std::string name;
  Shape shape;
};

std::string blk(int l, const char* what) { return fmt::format("blk.{}.{}.weight", l, what); }

// Appends one slot per layer: `what` for l = 0..L-1 (llama2.c stores each kind for all layers).
void per_layer(std::vector<Slot>& s, const LlamaConfig& c, const char* what, Shape shape) {
  for (int l = 0; l < c.n_layers; ++l) s.push_back({blk(l, what), shape});
}

// The tensors of a llama2.c file in the order they are stored.
std::vector<Slot> file_layout(const LlamaConfig& c, int version) {
  const int64_t D = c.dim, H = c.hidden_dim, V = c.vocab_size, KV = c.kv_dim();
  const int64_t Q = int64_t(c.n_heads) * c.head_dim();
  std::vector<Slot> s;
  if (version == 0) {
    s.push_back({"token_embd.weight", {V, D}});
    per_layer(s, c, "attn_norm", {D});
  } else {
    per_layer(s, c, "attn_norm", {D});
    per_layer(s, c, "ffn_norm", {D});
    s.push_back({"output_norm.weight", {D}});
    s.push_back({"token_embd.weight", {V, D}});
  }
  per_layer(s, c, "attn_q", {Q, D});
  per_layer(s, c, "attn_k", {KV, D});
  per_layer(s, c, "attn_v", {KV, D});
  per_layer(s, c, "attn_output", {D, Q});
  if (version == 0) per_layer(s, c, "ffn_norm", {D});
  per_layer(s, c, "ffn_gate", {H, D});  // w1
  per_layer(s, c, "ffn_down", {D, H});  // w2
  per_layer(s, c, "ffn_up", {H, D});    // w3
  if (version == 0) {
    s.push_back({"output_norm.weight", {D}});
    // freq_cis_real, freq_cis_imag: [seq_len, head_dim/2] each; RoPE is recomputed, so skip
    s.push_back({"", {2, int64_t(c.seq_len), int64_t(c.head_dim() / 2)}});
  }
  if (!c.tied_classifier) s.push_back({"output.weight", {V, D}});
  return s;
}

size_t layout_bytes(const std::vector<Slot>& slots) {
  size_t n = 0;
  for (const auto& s : slots) n += size_t(numel(s.shape)) * sizeof(float);
  return n;
}

// Reads the 7 config ints; for v0 a negative vocab_size means an untied classifier.
LlamaConfig read_config(Reader& r, int version) {
  LlamaConfig c;
  c.dim = r.get<int32_t>("dim");
  c.hidden_dim = r.get<int32_t>("hidden_dim");
  c.n_layers = r.get<int32_t>("n_layers");
  c.n_heads = r.get<int32_t>("n_heads");
  c.n_kv_heads = r.get<int32_t>("n_kv_heads");
  int32_t vocab = r.get<int32_t>("vocab_size");
  c.seq_len = r.get<int32_t>("seq_len");
  if (version == 0) {
    c.tied_classifier = vocab > 0;
    // guard INT32_MIN, whose negation overflows
    c.vocab_size = vocab == INT32_MIN ? 0 : (vocab < 0 ? -vocab : vocab);
  } else {
    c.vocab_size = vocab;
    uint8_t shared = r.get<uint8_t>("shared_classifier");
    QT_CHECK(shared <= 1, "{}: llama2.c v1 header: shared_classifier is {}, expected 0 or 1", r.path(),
             shared);
    c.tied_classifier = shared == 1;
  }
  return c;
}

}  // namespace

void check_llama_config(const LlamaConfig& c, const std::string& where) {
  // Bounds well above any LLaMA-family model, so a corrupt header cannot request absurd memory.
  struct Field {
    const char* name;
    int value, max;
  };
  const Field fields[] = {{"dim", c.dim, 1 << 16},         {"hidden_dim", c.hidden_dim, 1 << 18},
                          {"n_layers", c.n_layers, 1024},   {"n_heads", c.n_heads, 1024},
                          {"n_kv_heads", c.n_kv_heads, 1024}, {"vocab_size", c.vocab_size, 1 << 21},
                          {"seq_len", c.seq_len, 1 << 20}};
  for (const auto& f : fields)
    QT_CHECK(f.value > 0 && f.value <= f.max, "{}: {} is {}, expected 1..{}", where, f.name, f.value, f.max);
  QT_CHECK(c.dim % c.n_heads == 0, "{}: dim {} is not a multiple of n_heads {}", where, c.dim, c.n_heads);
  QT_CHECK(c.n_heads % c.n_kv_heads == 0, "{}: n_heads {} is not a multiple of n_kv_heads {}", where,
           c.n_heads, c.n_kv_heads);
  QT_CHECK(c.head_dim() % 2 == 0, "{}: head_dim {} is odd (RoPE rotates pairs)", where, c.head_dim());
  QT_CHECK(std::isfinite(c.norm_eps) && c.norm_eps > 0, "{}: norm_eps {} must be positive", where, c.norm_eps);
  QT_CHECK(std::isfinite(c.rope_theta) && c.rope_theta > 0, "{}: rope_theta {} must be positive", where,
           c.rope_theta);
}

ModelFile open_llama2c(const std::string& path) {
  size_t size = 0;
  const int fd = open_for_reading(path, &size);
  ::close(fd);
  // The header only (v1's is the longest): the tensors are read on demand.
  const std::string head = read_file_head(path, kV1HeaderBytes);
  Reader r(reinterpret_cast<const uint8_t*>(head.data()), head.size(), path);
  QT_CHECK(head.size() >= kV0HeaderBytes, "{}: file is {} bytes, too small for a llama2.c header ({} bytes)",
           path, head.size(), kV0HeaderBytes);
  int version = 0;
  uint32_t magic;
  std::memcpy(&magic, head.data(), sizeof magic);
  if (magic == kLlama2cMagic) {
    r.get<uint32_t>("magic");
    int32_t v = r.get<int32_t>("version");
    QT_CHECK(v == 1, "{}: llama2.c version {} is not supported (only float32 version 1)", path, v);
    version = 1;
  }
  ModelFile m;
  m.path = path;
  m.format = version == 0 ? "llama2c-v0" : "llama2c-v1";
  m.config = read_config(r, version);
  check_llama_config(m.config, fmt::format("{}: llama2.c header", path));

  // The whole layout must match the file size exactly before anything is allocated.
  const std::vector<Slot> slots = file_layout(m.config, version);
  const size_t header = version == 0 ? kV0HeaderBytes : kV1HeaderBytes;
  const size_t expected = header + layout_bytes(slots);
  QT_CHECK(size == expected,
           "{}: file size {} bytes does not match the llama2.c v{} layout for this header ({} bytes expected; "
           "dim={} hidden_dim={} n_layers={} n_heads={} n_kv_heads={} vocab_size={} seq_len={} tied={})",
           path, size, version, expected, m.config.dim, m.config.hidden_dim, m.config.n_layers,
           m.config.n_heads, m.config.n_kv_heads, m.config.vocab_size, m.config.seq_len,
           m.config.tied_classifier);
  uint64_t offset = header;
  for (const Slot& s : slots) {
    const size_t bytes = size_t(numel(s.shape)) * sizeof(float);
    if (!s.name.empty()) m.lazy.emplace(s.name, LazyTensor{s.shape, GgmlType::F32, offset, bytes});
    offset += bytes;
  }
  m.source = std::make_shared<LazySource>(path, size);
  validate_model(m);
  return m;
}

ModelFile load_llama2c(const std::string& path) {
  ModelFile m = open_llama2c(path);
  materialize(m);  // in name order, each checked finite
  return m;
}

void save_llama2c_v1(const ModelFile& m, const std::string& path) {
  validate_model(m);
  const LlamaConfig& c = m.config;
  AtomicFile f(path);
  f.put<uint32_t>(kLlama2cMagic);
  f.put<int32_t>(1);
  const int32_t header[7] = {c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len};
  f.write(header, sizeof header);
  f.put<uint8_t>(c.tied_classifier ? 1 : 0);
  f.pad_to(kV1HeaderBytes);
  for (const Slot& s : file_layout(c, 1)) {
    const Tensor& t = m.tensors.at(s.name);  // present with this shape: validate_model checked
    f.write(t.ptr(), size_t(t.numel()) * sizeof(float));
  }
  f.commit();
}

}  // namespace qtune
