// tests/io/stream_load_test.cpp — streaming loads (open_model: float tensors read on demand)
// and streaming writes (GgufStreamWriter, write_model_gguf_stream).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/file.h"
#include "core/hash.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "io/llama2c.h"
#include "io/model_file.h"
#include "test_util.h"

namespace qtune {
namespace {

std::string s260k(const char* f) { return test::shared_dir() + "/models/stories260K/" + f; }


std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}


// open_model leaves every float tensor on disk, and reading them gives load_model's values
// bit for bit, for each format a float model comes in.
void expect_lazy_equals_eager(const std::string& path) {
  const ModelFile eager = load_model(path);
  const ModelFile lazy = open_model(path);
  EXPECT_TRUE(lazy.tensors.empty()) << path;
  ASSERT_EQ(lazy.lazy.size(), eager.tensors.size()) << path;
  ASSERT_TRUE(lazy.source) << path;
  EXPECT_TRUE(eager.lazy.empty() && !eager.source) << path;
  EXPECT_EQ(lazy.format, eager.format);
  for (const auto& [name, t] : eager.tensors) {
    const Tensor r = read_float(lazy, name);
    ASSERT_EQ(r.shape, t.shape) << name;
    EXPECT_EQ(std::memcmp(r.ptr(), t.ptr(), size_t(t.numel()) * sizeof(float)), 0) << path << " " << name;
  }
}

TEST(StreamLoad, LazyTensorsEqualEagerOnesInEveryFormat) {
  QT_REQUIRE_SHARED(s260k("stories260K_v1.bin"));
  expect_lazy_equals_eager(s260k("stories260K.bin"));
  expect_lazy_equals_eager(s260k("stories260K_v1.bin"));
  const std::string dir = test::scratch_dir();
  const ModelFile m = load_model(s260k("stories260K.bin"));
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0}) {
    GgufSaveOptions o;
    o.weight_type = t;
    const std::string p = dir + "/m_" + ggml_type_info(t).name + ".gguf";
    save_model_gguf(m, p, o);
    expect_lazy_equals_eager(p);
  }
}

TEST(StreamLoad, ReleaseAndMaterialize) {
  QT_REQUIRE_SHARED(s260k("stories260K.bin"));
  ModelFile m = open_model(s260k("stories260K.bin"));
  const size_t n = m.lazy.size();
  release_weight(m, "blk.0.attn_q.weight");
  EXPECT_EQ(m.lazy.size(), n - 1);
  EXPECT_FALSE(has_float(m, "blk.0.attn_q.weight"));
  materialize(m);
  EXPECT_TRUE(m.lazy.empty());
  EXPECT_FALSE(m.source);  // the file is closed once nothing is left to read
  EXPECT_EQ(m.tensors.size(), n - 1);
}

// A file cut short after it was opened: the read names the file and the tensor.
TEST(StreamLoad, TruncatedAfterOpenNamesFileAndTensor) {
  QT_REQUIRE_SHARED(s260k("stories260K.bin"));
  const std::string p = test::scratch_dir() + "/m.gguf";
  save_model_gguf(load_model(s260k("stories260K.bin")), p, GgufSaveOptions{});
  const ModelFile m = open_model(p);
  const LazyTensor& t = m.lazy.at("blk.4.ffn_up.weight");
  ASSERT_EQ(::truncate(p.c_str(), off_t(t.offset + 10)), 0);
  EXPECT_EQ(test::error_of([&] { read_float(m, "blk.4.ffn_up.weight"); }),
            fmt::format("{}: file is truncated: tensor 'blk.4.ffn_up.weight' needs {} bytes at offset {}, the file "
                        "ends after {}", p, t.nbytes, t.offset, t.offset + 10));
}

// A NaN is found when its tensor is read (open_model) and by check_model_finite, with the
// message load_model gives.
TEST(StreamLoad, NanNamesFileAndTensorWhenRead) {
  QT_REQUIRE_SHARED(s260k("stories260K.bin"));
  ModelFile src = load_model(s260k("stories260K.bin"));
  src.tensors.at("blk.2.attn_v.weight").data[64 + 3] = std::nanf("");
  const std::string p = test::scratch_dir() + "/nan.bin";
  save_llama2c_v1(src, p);
  const std::string want = p + ": tensor 'blk.2.attn_v.weight': element [1, 3] is nan (weights must be finite)";
  const ModelFile m = open_model(p);  // the header and layout only: no error yet
  EXPECT_EQ(test::error_of([&] { read_float(m, "blk.2.attn_v.weight"); }), want);
  EXPECT_EQ(test::error_of([&] { check_model_finite(m); }), want);
  EXPECT_EQ(test::error_of([&] { load_model(p); }), want);
  EXPECT_EQ(test::error_of([&] { read_float(m, "blk.2.attn_q.weight"); }), "(no error)");
}

// A bad header or shape is still found before any tensor is read.
TEST(StreamLoad, OpenChecksSizeAndShapes) {
  QT_REQUIRE_SHARED(s260k("stories260K.bin"));
  const std::string p = test::scratch_dir() + "/short.bin";
  save_llama2c_v1(load_model(s260k("stories260K.bin")), p);
  struct stat st {};
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  ASSERT_EQ(::truncate(p.c_str(), st.st_size - 4), 0);
  const std::string msg = test::error_of([&] { open_model(p); });
  EXPECT_NE(msg.find(p + ": file size"), std::string::npos) << msg;
}

TEST(StreamLoad, FileFingerprintEqualsWholeFingerprint) {
  const std::string dir = test::scratch_dir();
  // sizes around the 8 MiB read size and the 8-byte word
  for (size_t n : {size_t(0), size_t(5), size_t(8), size_t(8 << 20), size_t((8 << 20) + 13)}) {
    std::vector<uint8_t> b(n);
    for (size_t i = 0; i < n; ++i) b[i] = uint8_t(i * 2654435761u >> 13);
    const std::string p = dir + "/f" + std::to_string(n);
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(n));
    EXPECT_EQ(fingerprint_file(p), fingerprint(b.data(), n)) << n;
  }
}

// The streaming writer writes the bytes GgufWriter writes for the same metadata and tensors.
TEST(GgufStream, SameBytesAsTheWholeFileWriter) {
  const std::string dir = test::scratch_dir();
  GgufWriter w;
  w.set_str("general.name", "x");
  w.set_u32("general.alignment", 64);
  Tensor a({3, 32}), b({5});
  for (int64_t i = 0; i < a.numel(); ++i) a.data[size_t(i)] = float(i) * 0.5f;
  for (int64_t i = 0; i < b.numel(); ++i) b.data[size_t(i)] = -float(i);
  GgufWriter whole = w;
  whole.add_tensor("a", a, GgmlType::F32);
  whole.add_tensor("b", b, GgmlType::F32);
  whole.write(dir + "/whole.gguf");
  GgufStreamWriter s(dir + "/stream.gguf", w, {{"a", {32, 3}, GgmlType::F32}, {"b", {5}, GgmlType::F32}});
  s.write(a.ptr(), 40 * sizeof(float));  // pieces need not follow rows
  s.write(a.ptr() + 40, 56 * sizeof(float));
  EXPECT_EQ(s.current(), 1u);
  s.write(b.ptr(), 5 * sizeof(float));
  s.commit();
  EXPECT_EQ(bytes_of(dir + "/whole.gguf"), bytes_of(dir + "/stream.gguf"));
}

TEST(GgufStream, OverrunAndIncompleteAreErrorsThatLeaveNothing) {
  const std::string dir = test::scratch_dir();
  GgufWriter meta;
  std::vector<float> v(64);
  {
    GgufStreamWriter s(dir + "/o.gguf", meta, {{"a", {32}, GgmlType::F32}});
    EXPECT_NE(test::error_of([&] { s.write(v.data(), 33 * sizeof(float)); }).find("tensor 'a': 132 bytes given, 128 left"),
              std::string::npos);
    s.write(v.data(), 16 * sizeof(float));
    EXPECT_EQ(test::error_of([&] { s.commit(); }), "GGUF stream: tensor 'a' is incomplete (64 of 128 bytes)");
  }
  EXPECT_TRUE(test::files_in(dir).empty());  // neither the output nor its temp file
}

LlamaConfig tiny() {
  LlamaConfig c;
  c.dim = 32, c.hidden_dim = 64, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.vocab_size = 48, c.seq_len = 16;
  return c;
}

// Values from fill land under the right names, whatever the write order; a throwing fill
// leaves nothing behind.
TEST(GgufStream, ModelStreamLoadsBackAndFailsCleanly) {
  const std::string dir = test::scratch_dir();
  const LlamaConfig c = tiny();
  std::vector<TensorSpec> order = model_tensor_specs(c);
  std::reverse(order.begin(), order.end());
  std::vector<int64_t> given(order.size());
  auto value = [](size_t i, int64_t k) { return float(i) + float(k) * 1e-4f; };
  write_model_gguf_stream(c, dir + "/m.gguf", GgufSaveOptions{}, order, [&](size_t i, float* dst, int64_t n) {
    for (int64_t k = 0; k < n; ++k) dst[k] = value(i, given[i] + k);
    given[i] += n;
  });
  const ModelFile m = load_model(dir + "/m.gguf");
  EXPECT_EQ(m.config.dim, c.dim);
  EXPECT_EQ(m.config.n_kv_heads, c.n_kv_heads);
  EXPECT_EQ(m.config.vocab_size, c.vocab_size);
  for (size_t i = 0; i < order.size(); ++i) {
    const Tensor& t = m.tensors.at(order[i].name);
    for (int64_t k = 0; k < t.numel(); ++k) ASSERT_EQ(t.data[size_t(k)], value(i, k)) << order[i].name;
  }

  const std::string bad = dir + "/fail";
  ASSERT_EQ(::mkdir(bad.c_str(), 0755), 0);
  EXPECT_EQ(test::error_of([&] {
              write_model_gguf_stream(c, bad + "/m.gguf", GgufSaveOptions{}, order, [&](size_t i, float*, int64_t) {
                if (i == 5) fail("fill failed");
              });
            }),
            "fill failed");
  EXPECT_TRUE(test::files_in(bad).empty());
  order.pop_back();
  EXPECT_NE(test::error_of([&] { write_model_gguf_stream(c, bad + "/m.gguf", GgufSaveOptions{}, order, {}); })
                .find("is missing from the write order"),
            std::string::npos);
}

}  // namespace
}  // namespace qtune
