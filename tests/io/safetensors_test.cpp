// The safetensors container: round trips in every float dtype, the byte layout the format
// defines (checked by hand, not by our own reader), and one clear error for each kind of bad file.
#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "io/ggml_blocks.h"
#include "test_util.h"

namespace qtune {
namespace {

using test::error_of;

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}
// A file made by hand: 8-byte length, the JSON header, then `data`.
std::string hand_file(const std::string& json, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = json.size();
  std::memcpy(out.data(), &n, 8);
  return out + json + data;
}
std::string floats(std::initializer_list<float> v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.begin(), s.size());
  return s;
}

TEST(Safetensors, Bf16RoundsToNearestEvenAndKeepsNan) {
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_fp32(0x3f80), 1.0f);
  // 1 + 2^-8 is halfway between bf16 1.0 and 1 + 2^-7: ties go to the even mantissa (1.0).
  EXPECT_EQ(fp32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(fp32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(std::nanf("")))));
  EXPECT_EQ(bf16_to_fp32(fp32_to_bf16(-INFINITY)), -INFINITY);
}

TEST(Safetensors, RoundTripsEveryFloatDtypeWithMetadata) {
  const std::string dir = test::scratch_dir(), path = dir + "/m.safetensors";
  std::vector<float> a = {1.0f, -2.5f, 3.25f, 0.1f, 1e-3f, -7.0f}, b = {0.5f, 0.333f, -1e4f}, c = {1.1f, 2.2f};
  write_safetensors(path,
                    {{"a.weight", {2, 3}, a.data(), SafetensorsDtype::F32},
                     {"b", {3}, b.data(), SafetensorsDtype::F16},
                     {"c", {1, 2}, c.data(), SafetensorsDtype::BF16}},
                    {{"format", "pt"}});
  SafetensorsFile f(path);
  ASSERT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.header().data_offset % 8, 0u);
  Tensor ta = f.to_float("a.weight"), tb = f.to_float("b"), tc = f.to_float("c");
  EXPECT_EQ(ta.shape, (Shape{2, 3}));
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(ta.ptr()[i], a[i]);
  for (size_t i = 0; i < b.size(); ++i) EXPECT_EQ(tb.ptr()[i], fp16_to_fp32(fp32_to_fp16(b[i])));
  for (size_t i = 0; i < c.size(); ++i) EXPECT_EQ(tc.ptr()[i], bf16_to_fp32(fp32_to_bf16(c[i])));
  // Header-only reading sees the same entries at the same absolute offsets.
  SafetensorsHeader h = read_safetensors_header(path);
  ASSERT_EQ(h.tensors.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(h.tensors[i].name, f.tensors()[i].name);
    EXPECT_EQ(h.tensors[i].offset, f.tensors()[i].offset);
  }
  EXPECT_EQ(h.find("b")->dtype, SafetensorsDtype::F16);
}

TEST(Safetensors, WrittenBytesFollowTheFormat) {
  const std::string dir = test::scratch_dir(), path = dir + "/x.safetensors";
  std::vector<float> x = {1.0f, 2.0f};
  write_safetensors(path, {{"x", {2}, x.data()}});
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  ASSERT_EQ(bytes.size(), 8 + n + 8);
  const std::string json = bytes.substr(8, n);
  EXPECT_NE(json.find("\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"), std::string::npos) << json;
  EXPECT_EQ(bytes.substr(8 + n), floats({1.0f, 2.0f}));
}

TEST(Safetensors, ReadsAHandMadeFileWithOtherDtypesListed) {
  const std::string dir = test::scratch_dir(), path = dir + "/h.safetensors";
  const std::string json =
      R"({"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})";
  write_bytes(path, hand_file(json, std::string(8, '\0') + floats({3.0f, 4.0f})));
  SafetensorsFile f(path);
  EXPECT_EQ(f.to_float("w").ptr()[1], 4.0f);
  EXPECT_EQ(f.find("ids")->dtype, SafetensorsDtype::Other);
  EXPECT_NE(error_of([&] { f.to_float("ids"); }).find("tensor 'ids' is I64, not a float dtype"), std::string::npos);
  EXPECT_NE(error_of([&] { f.to_float("nope"); }).find("no tensor 'nope'"), std::string::npos);
}

TEST(Safetensors, EachBadFileGetsOneClearError) {
  const std::string dir = test::scratch_dir(), path = dir + "/bad.safetensors";
  const std::string w2 = floats({1.0f, 2.0f});
  auto error_for = [&](const std::string& bytes) {
    write_bytes(path, bytes);
    std::string a = error_of([&] { SafetensorsFile f(path); });
    std::string b = error_of([&] { read_safetensors_header(path); });
    EXPECT_EQ(a, b);
    EXPECT_NE(a.find(path), std::string::npos) << a;
    return a;
  };
  auto has = [](const std::string& msg, const std::string& part) {
    EXPECT_NE(msg.find(part), std::string::npos) << msg;
  };
  has(error_for("abc"), "file is truncated");
  has(error_for(hand_file("{}", "").substr(0, 9)), "file is truncated: the header needs 2 bytes");
  std::string huge(8, '\xff');
  has(error_for(huge + "{}"), "not a safetensors file: header length");
  has(error_for(hand_file("{\"w\": ", w2)), "not valid JSON");
  has(error_for(hand_file("[1]", "")), "not a JSON object");
  has(error_for(hand_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", w2)),
      "tensor 'w': F32 × shape [3] needs 12 bytes");
  has(error_for(hand_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", w2)),
      "tensor 'w': data_offsets [0, 16] run past the end of the data (8 bytes): the file is truncated");
  has(error_for(hand_file(R"({"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", w2)), "unknown dtype \"Q4\"");
  has(error_for(hand_file(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", w2)),
      "not a non-negative integer");
  has(error_for(hand_file(R"({"w":{"dtype":"F32","shape":[2]}})", w2)), "tensor 'w': no \"data_offsets\"");
  has(error_for(hand_file(
          R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
          w2)),
      "tensors 'a' and 'b' overlap");
  has(error_for(hand_file(R"({"__metadata__":{"k":1}})", "")), "value of 'k' is not a string");
  has(error_of([&] { SafetensorsFile f(dir + "/missing.safetensors"); }), "no such file");
}

TEST(Safetensors, WriterRefusesDuplicateNamesAndLeavesNoFile) {
  const std::string dir = test::scratch_dir(), path = dir + "/d.safetensors";
  std::vector<float> x = {1.0f};
  const std::string msg = error_of([&] { write_safetensors(path, {{"x", {1}, x.data()}, {"x", {1}, x.data()}}); });
  EXPECT_NE(msg.find("tensor 'x': the name is taken"), std::string::npos) << msg;
  EXPECT_TRUE(test::files_in(dir).empty());
}

}  // namespace
}  // namespace qtune
