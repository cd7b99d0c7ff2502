// GGUF container: every metadata type and tensor type round-trips; layout follows llama.cpp
// (aligned data section, sequential aligned offsets); getters name file and key on errors.
#include <cstring>
#include <random>

#include "core/file.h"
#include "io/gguf.h"
#include "test_util.h"

namespace qtune {
namespace {

Tensor random_tensor(Shape s, uint32_t seed) {
  Tensor t(std::move(s));
  std::mt19937 g(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto& v : t.data) v = nd(g);
  return t;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(GgufFile, EveryMetadataTypeRoundTrips) {
  std::string path = test::scratch_dir() + "/meta.gguf";
  GgufWriter w;
  w.set("u8", GgufValue::scalar_u(GgufType::UINT8, 200));
  w.set("i8", GgufValue::scalar_i(GgufType::INT8, -100));
  w.set("u16", GgufValue::scalar_u(GgufType::UINT16, 60000));
  w.set("i16", GgufValue::scalar_i(GgufType::INT16, -30000));
  w.set_u32("u32", 4000000000u);
  w.set_i32("i32", -2000000000);
  w.set_f32("f32", 0.1f);
  w.set_bool("bool", true);
  w.set_str("str", std::string("caf\xc3\xa9\0x", 7));  // UTF-8 and an embedded NUL
  w.set_u64("u64", 1ull << 60);
  w.set("i64", GgufValue::scalar_i(GgufType::INT64, -(1ll << 60)));
  w.set("f64", GgufValue::scalar_f(GgufType::FLOAT64, 1.0 / 3.0));
  w.set_arr_str("arr_str", {"a", "", "▁b"});
  w.set_arr_f32("arr_f32", {1.5f, -2.0f});
  w.set_arr_i32("arr_i32", {-1, 7});
  w.set_arr_i32("arr_empty", {});
  w.set_u32("u32", 4000000001u);  // replaces in place, keeps the first position
  w.write(path);

  GgufFile f(path);
  ASSERT_EQ(f.metadata().size(), 16u);
  EXPECT_EQ(f.metadata()[4].first, "u32");
  EXPECT_EQ(f.get_u32("u8"), 200u);
  EXPECT_EQ(f.get_i32("i8"), -100);
  EXPECT_EQ(f.get_u32("u16"), 60000u);
  EXPECT_EQ(f.get_i32("i16"), -30000);
  EXPECT_EQ(f.get_u32("u32"), 4000000001u);
  EXPECT_EQ(f.get_i32("i32"), -2000000000);
  EXPECT_EQ(f.get_f32("f32"), 0.1f);
  EXPECT_TRUE(f.get_bool("bool"));
  EXPECT_EQ(f.get_str("str"), std::string("caf\xc3\xa9\0x", 7));
  EXPECT_EQ(f.get_u64("u64"), 1ull << 60);
  EXPECT_EQ(f.find("i64")->i, -(1ll << 60));
  EXPECT_EQ(f.find("f64")->f, 1.0 / 3.0);
  EXPECT_EQ(f.get_arr_str("arr_str"), (std::vector<std::string>{"a", "", "▁b"}));
  EXPECT_EQ(f.get_arr_f32("arr_f32"), (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(f.get_arr_i32("arr_i32"), (std::vector<int32_t>{-1, 7}));
  EXPECT_TRUE(f.get_arr_i32("arr_empty").empty());
  EXPECT_EQ(f.get_u32_or("absent", 9), 9u);
  EXPECT_TRUE(f.tensors().empty());

  // Errors name the file and the key.
  std::string e = error_of([&] { f.get_u32("str"); });
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("key 'str': expected uint32, found string"), std::string::npos) << e;
  EXPECT_NE(error_of([&] { f.get_u32("i8"); }).find("does not fit"), std::string::npos);
  EXPECT_NE(error_of([&] { f.get_i32("u32"); }).find("does not fit"), std::string::npos);
  EXPECT_NE(error_of([&] { f.get_str("nope"); }).find("key 'nope': missing"), std::string::npos);
}

TEST(GgufFile, TensorsOfEveryTypeAndLayout) {
  std::string path = test::scratch_dir() + "/t.gguf";
  GgufWriter w;
  w.set_u32("general.alignment", 64);
  const GgmlType types[] = {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1};
  std::vector<Tensor> src;
  for (int k = 0; k < 5; k++) {
    src.push_back(random_tensor({3, 2, 64}, uint32_t(k)));  // ne = {64, 2, 3}
    w.add_tensor(fmt::format("t{}", k), src.back(), types[k]);
  }
  Tensor ints({5});
  for (int i = 0; i < 5; i++) ints.data[i] = float(i * 1000 - 2000);
  w.add_tensor("i8", Tensor(Shape{7}), GgmlType::I8);
  w.add_tensor("i16", ints, GgmlType::I16);
  w.add_tensor("i32", ints, GgmlType::I32);
  w.write(path);

  GgufFile f(path);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  ASSERT_EQ(f.tensors().size(), 8u);
  uint64_t expect = 0;
  for (const auto& t : f.tensors()) {
    EXPECT_EQ(t.offset, expect) << t.name;  // sequential, each padded to the alignment
    expect = (t.offset + t.nbytes + 63) / 64 * 64;
  }
  EXPECT_EQ(f.data_offset() + expect, f.file_size());  // the last tensor is padded too
  for (int k = 0; k < 5; k++) {
    const GgufTensorInfo* t = f.find_tensor(fmt::format("t{}", k));
    ASSERT_TRUE(t);
    EXPECT_EQ(t->ne, (std::vector<int64_t>{64, 2, 3}));
    EXPECT_EQ(t->type, types[k]);
    Tensor back = f.to_float(*t);
    EXPECT_EQ(back.shape, (Shape{3, 2, 64}));
    // to_float equals the block format's own dequantization of the quantized source.
    std::vector<uint8_t> q(ggml_row_bytes(types[k], 384));
    quantize_any(types[k], src[k].ptr(), q.data(), 384);
    std::vector<float> ref(384);
    dequantize_any(types[k], q.data(), ref.data(), 384);
    EXPECT_EQ(std::memcmp(back.ptr(), ref.data(), 384 * 4), 0) << k;
    EXPECT_EQ(std::memcmp(t->data, q.data(), q.size()), 0) << k;
    if (k == 0) EXPECT_EQ(std::memcmp(back.ptr(), src[0].ptr(), 384 * 4), 0);
  }
  Tensor i16 = f.to_float(*f.find_tensor("i16"));
  for (int i = 0; i < 5; i++) EXPECT_EQ(i16.data[i], ints.data[i]);
  EXPECT_EQ(f.find_tensor("i32")->nbytes, 20u);
}

TEST(GgufFile, WriterRejectsBadTensors) {
  GgufWriter w;
  EXPECT_NE(error_of([&] { w.add_tensor("q", Tensor(Shape{2, 48}), GgmlType::Q4_0); }).find("not a multiple of"),
            std::string::npos);
  EXPECT_THROW(w.add_tensor("five", Tensor(Shape{1, 1, 1, 1, 1}), GgmlType::F32), Error);
  w.add_tensor("a", Tensor(Shape{4}), GgmlType::F32);
  EXPECT_THROW(w.add_tensor("a", Tensor(Shape{4}), GgmlType::F32), Error);
  EXPECT_THROW(w.add_raw_tensor("b", {4}, GgmlType::F32, std::vector<uint8_t>(15)), Error);
  Tensor nan({32});
  nan.data[3] = NAN;
  EXPECT_NE(error_of([&] { w.add_tensor("n", nan, GgmlType::Q8_0); }).find("tensor 'n'"), std::string::npos);
}

TEST(GgufFile, NestedArrayRejectedClearly) {
  std::string path = test::scratch_dir() + "/nested.gguf";
  GgufWriter w;
  w.set("nested", GgufValue::array(GgufType::ARRAY, {GgufValue::array(GgufType::UINT8, {})}));
  w.write(path);
  std::string e = error_of([&] { GgufFile f(path); });
  EXPECT_NE(e.find("key 'nested': nested arrays are not supported"), std::string::npos) << e;
}

TEST(GgufFile, ReadsLlamaCppVocabFile) {
  std::string p = test::shared_dir() + "/models/gguf-vocab/ggml-vocab-llama-spm.gguf";
  QT_REQUIRE_SHARED(p);
  GgufFile f(p);
  EXPECT_EQ(f.metadata().size(), 22u);
  EXPECT_EQ(f.get_str("general.architecture"), "llama");
  EXPECT_EQ(f.get_u32("llama.block_count"), 32u);
  EXPECT_EQ(f.get_arr_str("tokenizer.ggml.tokens").size(), 32000u);
  EXPECT_EQ(f.get_arr_str("tokenizer.ggml.tokens")[1], "<s>");
  EXPECT_TRUE(f.tensors().empty());
}

}  // namespace
}  // namespace qtune
