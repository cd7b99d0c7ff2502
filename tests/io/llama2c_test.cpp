// tests/io/llama2c_test.cpp — llama2.c v0/v1 checkpoints: real stories260K files, round trip
// through the v1 writer, and bad input.
#include <cstring>
#include <fstream>
#include <vector>

#include "core/file.h"
#include "io/llama2c.h"
#include "io/model_file.h"
#include "io/model_compare.h"
#include "test_util.h"

namespace qtune {
namespace {

std::string s260k(const char* f) { return test::shared_dir() + "/models/stories260K/" + f; }

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}
void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}
void put_i32(std::vector<uint8_t>& b, size_t off, int32_t v) { std::memcpy(b.data() + off, &v, 4); }

// Expects an Error whose message names `path`.
template <class F>
void expect_error_naming(F&& f, const std::string& path) {
  try {
    f();
    ADD_FAILURE() << "no error for " << path;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(Llama2c, LoadsStories260KLegacy) {
  QT_REQUIRE_SHARED(s260k("stories260K.bin"));
  ModelFile m = load_llama2c(s260k("stories260K.bin"));
  const LlamaConfig& c = m.config;
  EXPECT_EQ(m.format, "llama2c-v0");
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hidden_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.seq_len, 512);
  EXPECT_TRUE(c.tied_classifier);
  EXPECT_EQ(m.tensors.count("output.weight"), 0u);
  // 260,032 = every stored tensor (embedding included, the tied classifier counted once).
  int64_t params = 0;
  for (const auto& [name, t] : m.tensors) params += t.numel();
  EXPECT_EQ(params, 260032);
  EXPECT_EQ(m.tensors.size(), 2u + 9u * 5u);
  EXPECT_EQ(m.tensors.at("blk.4.attn_k.weight").shape, (Shape{32, 64}));
  EXPECT_EQ(m.tensors.at("blk.0.ffn_down.weight").shape, (Shape{64, 172}));
  // the first embedding value is the float right after the 28-byte header
  auto raw = read_bytes(s260k("stories260K.bin"));
  float first;
  std::memcpy(&first, raw.data() + 28, 4);
  EXPECT_EQ(m.tensors.at("token_embd.weight").ptr()[0], first);
}

TEST(Llama2c, V0AndV1AreBitIdentical) {
  QT_REQUIRE_SHARED(s260k("stories260K_v1.bin"));
  ModelFile a = load_llama2c(s260k("stories260K.bin"));
  ModelFile b = load_model(s260k("stories260K_v1.bin"));
  EXPECT_EQ(b.format, "llama2c-v1");
  test::expect_same_model(b, a);
  // the norms really differ between tensors, so a mix-up of the order would show above
  EXPECT_NE(std::memcmp(a.tensors.at("blk.0.attn_norm.weight").ptr(), a.tensors.at("blk.0.ffn_norm.weight").ptr(),
                        64 * 4),
            0);
}

TEST(Llama2c, SaveV1RoundTripsAndMatchesExportPy) {
  QT_REQUIRE_SHARED(s260k("stories260K_v1.bin"));
  ModelFile a = load_model(s260k("stories260K.bin"));
  std::string out = test::scratch_dir() + "/m.bin";
  save_llama2c_v1(a, out);
  // byte-identical to the file written by llama2.c export.py --version 1
  EXPECT_EQ(read_bytes(out), read_bytes(s260k("stories260K_v1.bin")));
}

TEST(Llama2c, UntiedClassifierRoundTrip) {
  QT_REQUIRE_SHARED(s260k("stories260K.bin"));
  ModelFile a = load_model(s260k("stories260K.bin"));
  a.config.tied_classifier = false;
  Tensor cls({512, 64});
  for (int64_t i = 0; i < cls.numel(); ++i) cls.ptr()[i] = float(i % 97) * 0.01f;
  a.tensors.emplace("output.weight", std::move(cls));
  std::string dir = test::scratch_dir();
  save_llama2c_v1(a, dir + "/u.bin");
  ModelFile b = load_model(dir + "/u.bin");
  EXPECT_FALSE(b.config.tied_classifier);
  EXPECT_EQ(std::memcmp(b.tensors.at("output.weight").ptr(), a.tensors.at("output.weight").ptr(), 512 * 64 * 4), 0);

  // the same as a legacy file: negative vocab, wcls after the RoPE tables
  auto v0 = read_bytes(s260k("stories260K.bin"));
  put_i32(v0, 20, -512);
  const auto* w = reinterpret_cast<const uint8_t*>(a.tensors.at("output.weight").ptr());
  v0.insert(v0.end(), w, w + 512 * 64 * 4);
  write_bytes(dir + "/u0.bin", v0);
  ModelFile c = load_model(dir + "/u0.bin");
  EXPECT_FALSE(c.config.tied_classifier);
  EXPECT_EQ(c.config.vocab_size, 512);
  EXPECT_EQ(std::memcmp(c.tensors.at("output.weight").ptr(), w, 512 * 64 * 4), 0);
}

TEST(Llama2c, TruncatedAtManyCutPoints) {
  QT_REQUIRE_SHARED(s260k("stories260K_v1.bin"));
  std::string dir = test::scratch_dir();
  for (const char* name : {"stories260K.bin", "stories260K_v1.bin"}) {
    auto bytes = read_bytes(s260k(name));
    for (size_t cut : {size_t(0), size_t(3), size_t(4), size_t(20), size_t(27), size_t(28), size_t(100),
                       size_t(255), size_t(256), size_t(257), bytes.size() / 2, bytes.size() - 16384,
                       bytes.size() - 4, bytes.size() - 1}) {
      std::string p = fmt::format("{}/cut{}_{}", dir, cut, name);
      write_bytes(p, std::vector<uint8_t>(bytes.begin(), bytes.begin() + long(cut)));
      expect_error_naming([&] { load_model(p); }, p);
    }
    // trailing garbage is a size mismatch too
    std::string p = dir + "/long_" + name;
    bytes.push_back(0);
    write_bytes(p, bytes);
    expect_error_naming([&] { load_model(p); }, p);
  }
}

TEST(Llama2c, CorruptHeaderValues) {
  QT_REQUIRE_SHARED(s260k("stories260K_v1.bin"));
  std::string dir = test::scratch_dir();
  auto v0 = read_bytes(s260k("stories260K.bin"));
  auto v1 = read_bytes(s260k("stories260K_v1.bin"));
  struct Case {
    bool v1;
    size_t off;
    int32_t value;
    const char* expect;  // a word the message must contain
  };
  const Case cases[] = {
      {false, 0, 0, "dim"},           {false, 0, -64, "dim"},         {false, 0, 1 << 30, "dim"},
      {false, 4, 173, "file size"},   {false, 8, 100000, "n_layers"}, {false, 12, 7, "n_heads"},
      {false, 16, 3, "n_kv_heads"},   {false, 20, 0, "vocab_size"},   {false, 20, INT32_MIN, "vocab_size"},
      {false, 24, 511, "file size"},  {false, 12, 64, "odd"},         {false, 20, 1 << 24, "vocab_size"},
      {true, 4, 2, "version"},        {true, 8, 65, "n_heads"},       {true, 28, -512, "vocab_size"},
      {true, 32, 1 << 30, "seq_len"}, {true, 12, 6, "file size"},
  };
  int i = 0;
  for (const Case& c : cases) {
    auto b = c.v1 ? v1 : v0;
    put_i32(b, c.off, c.value);
    std::string p = fmt::format("{}/bad{}.bin", dir, i++);
    write_bytes(p, b);
    try {
      load_model(p);
      ADD_FAILURE() << "no error for case " << i;
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(p), std::string::npos) << msg;
      EXPECT_NE(msg.find(c.expect), std::string::npos) << "case " << i << ": " << msg;
    }
  }
  // shared_classifier flag must be 0 or 1
  auto b = v1;
  b[36] = 7;
  write_bytes(dir + "/flag.bin", b);
  expect_error_naming([&] { load_model(dir + "/flag.bin"); }, dir + "/flag.bin");
}

TEST(Llama2c, NonFiniteWeightIsNamed) {
  QT_REQUIRE_SHARED(s260k("stories260K_v1.bin"));
  auto b = read_bytes(s260k("stories260K_v1.bin"));
  uint32_t nan = 0x7fc00000;
  std::memcpy(b.data() + 256, &nan, 4);  // first rms_att value
  std::string p = test::scratch_dir() + "/nan.bin";
  write_bytes(p, b);
  try {
    load_model(p);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blk.0.attn_norm.weight"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qtune
