// Bad GGUF input: truncations, wrong magic/version, corrupted counts, lengths, types, dims,
// offsets, random byte flips, a missing llama key and a config/shape mismatch. Each must throw
// qtune::Error naming the file — never crash, never hang (this binary also runs under ASan).
#include <cstdio>
#include <cstring>
#include <random>

#include "core/file.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "test_util.h"

namespace qtune {
namespace {

// A tiny but complete llama model (2 heads, 1 kv head, 1 layer) with a vocabulary.
ModelFile tiny_model() {
  ModelFile m;
  LlamaConfig& c = m.config;
  c.dim = 32, c.hidden_dim = 32, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 1, c.vocab_size = 8, c.seq_len = 16;
  m.path = "tiny";
  std::mt19937 g(5);
  std::normal_distribution<float> nd;
  auto add = [&](const std::string& n, Shape s) {
    Tensor t(std::move(s));
    for (auto& v : t.data) v = nd(g);
    m.tensors.emplace(n, std::move(t));
  };
  add("token_embd.weight", {8, 32});
  add("output_norm.weight", {32});
  for (const char* w : {"attn_norm", "ffn_norm"}) add(fmt::format("blk.0.{}.weight", w), {32});
  for (const char* w : {"attn_q", "attn_output", "ffn_gate", "ffn_down", "ffn_up"})
    add(fmt::format("blk.0.{}.weight", w), {32, 32});
  for (const char* w : {"attn_k", "attn_v"}) add(fmt::format("blk.0.{}.weight", w), {16, 32});
  return m;
}

std::string write_valid(const std::string& dir) {
  std::string path = dir + "/valid.gguf";
  GgufVocab v;
  for (int i = 0; i < 8; i++) v.tokens.push_back(fmt::format("t{}", i));
  v.scores.assign(8, 0.0f);
  v.types.assign(8, 1);
  GgufSaveOptions o;
  o.weight_type = GgmlType::Q8_0;
  o.vocab = &v;
  save_model_gguf(tiny_model(), path, o);
  return path;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");  // no fsync: these files are throwaway
  ASSERT_TRUE(f);
  ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
  std::fclose(f);
}

// Loads path as a model; returns the Error message, or "" if it loaded.
std::string load_error(const std::string& path) {
  try {
    load_gguf_model(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_error(const std::string& path, const std::string& what) {
  std::string e = load_error(path);
  ASSERT_FALSE(e.empty()) << "loaded without error, expected: " << what;
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find(what), std::string::npos) << e;
}

template <class T>
void patch(std::string& b, size_t pos, T v) {
  ASSERT_LE(pos + sizeof(T), b.size());
  std::memcpy(&b[pos], &v, sizeof(T));
}

// Byte position just after the name of tensor `name` in its tensor info.
size_t after_name(const std::string& b, const std::string& name) {
  size_t p = b.find(name);
  EXPECT_NE(p, std::string::npos) << name;
  return p + name.size();
}

TEST(GgufBadInput, TruncatedAtEveryCut) {
  std::string dir = test::scratch_dir();
  std::string valid = write_valid(dir);
  std::string bytes = read_text_file(valid);
  GgufFile f(valid);
  const auto& last = f.tensors().back();
  const size_t end = f.data_offset() + last.offset + last.nbytes;
  ASSERT_TRUE(load_error(valid).empty()) << load_error(valid);
  std::string cut = dir + "/cut.gguf";
  int n = 0;
  // Every byte of the fixed header, then ~150 cuts through metadata and tensor infos (odd
  // stride, so cuts land inside lengths, type ids and strings), then ~50 through the data.
  const size_t info_step = f.data_offset() / 150 | 1, data_step = (end - f.data_offset()) / 50 | 1;
  for (size_t k = 0; k < end; k += k < 32 ? 1 : k < f.data_offset() ? info_step : data_step, n++) {
    write_bytes(cut, bytes.substr(0, k));
    std::string e = load_error(cut);
    ASSERT_FALSE(e.empty()) << "cut at " << k << " loaded";
    ASSERT_NE(e.find(cut), std::string::npos) << "cut at " << k << ": " << e;
  }
  EXPECT_GT(n, 200);
}

TEST(GgufBadInput, HeaderCorruptions) {
  std::string dir = test::scratch_dir();
  const std::string good = read_text_file(write_valid(dir));
  std::string p = dir + "/bad.gguf";
  auto with = [&](auto edit) {
    std::string b = good;
    edit(b);
    write_bytes(p, b);
  };
  with([](std::string& b) { b[0] = 'X'; });
  expect_error(p, "not a GGUF file");
  with([](std::string& b) { patch<uint32_t>(b, 4, 2); });
  expect_error(p, "GGUF version 2 is not supported");
  with([](std::string& b) { patch<uint32_t>(b, 4, 4); });
  expect_error(p, "GGUF version 4 is not supported");
  with([](std::string& b) { patch<uint64_t>(b, 8, 1ull << 40); });
  expect_error(p, "tensor count");
  with([](std::string& b) { patch<uint64_t>(b, 16, ~0ull); });
  expect_error(p, "metadata count");
  with([](std::string& b) { patch<uint64_t>(b, 24, ~0ull - 5); });  // first key's length
  expect_error(p, "string length");
  with([](std::string& b) { patch<uint32_t>(b, 24 + 8 + 20, 99); });  // "general.architecture" value type
  expect_error(p, "key 'general.architecture': unknown value type 99");
  with([](std::string& b) {
    size_t pos = b.find("tokenizer.ggml.tokens") + 21 + 4 + 4;  // array element count
    patch<uint64_t>(b, pos, 1ull << 59);
  });
  expect_error(p, "cannot fit");
}

TEST(GgufBadInput, TensorInfoCorruptions) {
  std::string dir = test::scratch_dir();
  const std::string good = read_text_file(write_valid(dir));
  std::string p = dir + "/bad.gguf";
  const std::string q = "blk.0.attn_q.weight";  // Q8_0, ne = {32, 32}
  auto with = [&](auto edit) {
    std::string b = good;
    edit(b, after_name(b, q));
    write_bytes(p, b);
  };
  with([](std::string& b, size_t a) { patch<uint32_t>(b, a, 5); });
  expect_error(p, "n_dims 5");
  with([](std::string& b, size_t a) { patch<uint32_t>(b, a, 0); });
  expect_error(p, "n_dims 0");
  with([](std::string& b, size_t a) { patch<int64_t>(b, a + 4, 0); });
  expect_error(p, "ne[0] = 0");
  with([](std::string& b, size_t a) { patch<int64_t>(b, a + 12, -3); });
  expect_error(p, "ne[1] = -3");
  with([](std::string& b, size_t a) { patch<int64_t>(b, a + 12, int64_t(1) << 62); });
  expect_error(p, "tensor 'blk.0.attn_q.weight'");
  with([](std::string& b, size_t a) { patch<int64_t>(b, a + 4, 48); });  // Q8_0 rows must be ×32
  expect_error(p, "not a multiple of the Q8_0 block size");
  with([](std::string& b, size_t a) { patch<uint32_t>(b, a + 20, 12); });
  expect_error(p, "unsupported tensor type Q4_K");
  with([](std::string& b, size_t a) { patch<uint32_t>(b, a + 20, 1234); });
  expect_error(p, "unsupported tensor type");
  with([](std::string& b, size_t a) {
    uint64_t off;
    std::memcpy(&off, &b[a + 24], 8);
    patch<uint64_t>(b, a + 24, off + 1);
  });
  expect_error(p, "is not a multiple of the alignment");
  with([](std::string& b, size_t a) { patch<uint64_t>(b, a + 24, 1ull << 40); });
  expect_error(p, "beyond end of file");
  with([](std::string& b, size_t) { b[after_name(b, "blk.0.attn_k.weight") - 8] = 'q'; });  // attn_k → attn_q
  expect_error(p, "duplicate tensor name 'blk.0.attn_q.weight'");
}

// Copies a valid file's metadata and tensors into a new file, dropping or replacing one key.
void rewrite(const std::string& src, const std::string& dst, const std::string& key, const GgufValue* value) {
  GgufFile f(src);
  GgufWriter w;
  for (const auto& [k, v] : f.metadata())
    if (k != key) w.set(k, v);
  if (value) w.set(key, *value);
  for (const auto& t : f.tensors())
    w.add_raw_tensor(t.name, t.ne, t.type, std::vector<uint8_t>(t.data, t.data + t.nbytes));
  w.write(dst);
}

TEST(GgufBadInput, MissingKeyAndConfigMismatch) {
  std::string dir = test::scratch_dir();
  std::string valid = write_valid(dir);
  std::string p = dir + "/bad.gguf";
  rewrite(valid, p, "llama.block_count", nullptr);
  expect_error(p, "key 'llama.block_count': missing");
  rewrite(valid, p, "llama.attention.layer_norm_rms_epsilon", nullptr);
  expect_error(p, "layer_norm_rms_epsilon");
  GgufValue s = GgufValue::string("gpt2");
  rewrite(valid, p, "general.architecture", &s);
  expect_error(p, "'gpt2' is not supported");
  GgufValue ff = GgufValue::scalar_u(GgufType::UINT32, 64);  // tensors are 32 wide
  rewrite(valid, p, "llama.feed_forward_length", &ff);
  expect_error(p, "ffn_gate");
  GgufValue wrong = GgufValue::string("32");
  rewrite(valid, p, "llama.embedding_length", &wrong);
  expect_error(p, "key 'llama.embedding_length': expected int32, found string");
  GgufValue align = GgufValue::scalar_u(GgufType::UINT32, 3);
  rewrite(valid, p, "general.alignment", nullptr);
  EXPECT_EQ(load_error(p), "");  // default alignment 32 is what the writer used
  GgufWriter w;
  w.set("general.alignment", align);
  EXPECT_THROW(w.write(p), Error);
}

TEST(GgufBadInput, RandomByteFlipsNeverCrash) {
  std::string dir = test::scratch_dir();
  std::string valid = write_valid(dir);
  const std::string good = read_text_file(valid);
  GgufFile f(valid);
  std::string p = dir + "/flip.gguf";
  std::mt19937 g(42);
  int errors = 0, loaded = 0;
  for (int trial = 0; trial < 150; trial++) {
    std::string b = good;
    std::uniform_int_distribution<size_t> pos(0, f.data_offset() - 1);  // header and infos
    for (int k = 0; k < 3; k++) b[pos(g)] ^= char(1 << (g() % 8));
    write_bytes(p, b);
    try {
      load_gguf_model(p);
      loaded++;
    } catch (const Error& e) {
      errors++;
      ASSERT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(errors, 50);  // most flips land in lengths, counts, ids or strings that matter
  EXPECT_EQ(errors + loaded, 150);
}

}  // namespace
}  // namespace qtune
