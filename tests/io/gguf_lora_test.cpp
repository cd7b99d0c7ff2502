// LoRA adapter GGUF: round trip, and the llama.cpp rule checker flags each rule when violated.
#include <cstring>
#include <random>

#include "core/file.h"
#include "io/gguf.h"
#include "io/lora_gguf.h"
#include "test_util.h"

namespace qtune {
namespace {

Tensor randn(Shape s, uint32_t seed) {
  Tensor t(std::move(s));
  std::mt19937 g(seed);
  std::normal_distribution<float> nd;
  for (auto& v : t.data) v = nd(g);
  return t;
}

// Base with attn_q [64, 64] and ffn_down [64, 96] (torch [out, in]).
ModelFile base_model() {
  ModelFile m;
  m.tensors.emplace("blk.0.attn_q.weight", Tensor(Shape{64, 64}));
  m.tensors.emplace("blk.1.ffn_down.weight", Tensor(Shape{64, 96}));
  return m;
}

TensorMap adapters() {
  TensorMap a;
  a.emplace("blk.0.attn_q.lora_a", randn({4, 64}, 1));
  a.emplace("blk.0.attn_q.lora_b", randn({64, 4}, 2));
  a.emplace("blk.1.ffn_down.lora_a", randn({4, 96}, 3));
  a.emplace("blk.1.ffn_down.lora_b", randn({64, 4}, 4));
  return a;
}

TEST(GgufLora, RoundTripAndLlamaCppNames) {
  std::string path = test::scratch_dir() + "/a.gguf";
  TensorMap a = adapters();
  save_lora_gguf(path, a, 16.0f);
  GgufFile f(path);
  EXPECT_EQ(f.get_str("general.type"), "adapter");
  EXPECT_EQ(f.get_str("adapter.type"), "lora");
  EXPECT_EQ(f.get_f32("adapter.lora.alpha"), 16.0f);
  const GgufTensorInfo* ta = f.find_tensor("blk.0.attn_q.weight.lora_a");
  const GgufTensorInfo* tb = f.find_tensor("blk.1.ffn_down.weight.lora_b");
  ASSERT_TRUE(ta && tb);
  EXPECT_EQ(ta->ne, (std::vector<int64_t>{64, 4}));  // {in, r}
  EXPECT_EQ(tb->ne, (std::vector<int64_t>{4, 64}));  // {r, out}
  ModelFile base = base_model();
  EXPECT_TRUE(check_llamacpp_lora_rules(f, &base).empty());
  LoraGguf back = load_lora_gguf(path);
  EXPECT_EQ(back.alpha, 16.0f);
  EXPECT_EQ(back.arch, "llama");
  ASSERT_EQ(back.adapters.size(), a.size());
  for (const auto& [name, t] : a) {
    ASSERT_TRUE(back.adapters.count(name)) << name;
    EXPECT_EQ(back.adapters.at(name).shape, t.shape);
    EXPECT_EQ(std::memcmp(back.adapters.at(name).ptr(), t.ptr(), size_t(t.numel()) * 4), 0);
  }
  TensorMap unpaired = a;
  unpaired.erase("blk.0.attn_q.lora_b");
  EXPECT_THROW(save_lora_gguf(path, unpaired, 1.0f), Error);
}

struct Spec {
  std::string arch = "llama", type = "adapter", adapter_type = "lora";
  bool alpha = true;
  std::vector<std::pair<std::string, Shape>> tensors = {{"blk.0.attn_q.weight.lora_a", {4, 64}},
                                                        {"blk.0.attn_q.weight.lora_b", {64, 4}}};
};

std::vector<std::string> violations(const Spec& s, const std::string& path, bool with_base = true) {
  GgufWriter w;
  if (!s.arch.empty()) w.set_str("general.architecture", s.arch);
  if (!s.type.empty()) w.set_str("general.type", s.type);
  if (!s.adapter_type.empty()) w.set_str("adapter.type", s.adapter_type);
  if (s.alpha) w.set_f32("adapter.lora.alpha", 8.0f);
  for (const auto& [name, shape] : s.tensors) w.add_tensor(name, Tensor(shape), GgmlType::F32);
  w.write(path);
  GgufFile f(path);
  ModelFile base = base_model();
  return check_llamacpp_lora_rules(f, with_base ? &base : nullptr);
}

void expect_one(const std::vector<std::string>& v, const std::string& what) {
  ASSERT_EQ(v.size(), 1u) << (v.empty() ? "no violation" : fmt::format("{}", fmt::join(v, " | ")));
  EXPECT_NE(v[0].find(what), std::string::npos) << v[0];
}

TEST(GgufLora, CheckerFlagsEachRule) {
  std::string path = test::scratch_dir() + "/bad.gguf";
  EXPECT_TRUE(violations(Spec{}, path).empty());
  Spec s;
  s.arch = "falcon";
  expect_one(violations(s, path), "does not match the base");
  s = {};
  s.arch = "";
  expect_one(violations(s, path), "general.architecture");
  s = {};
  s.type = "model";
  expect_one(violations(s, path), "general.type");
  s = {};
  s.type = "";
  expect_one(violations(s, path), "general.type");
  s = {};
  s.adapter_type = "ia3";
  expect_one(violations(s, path), "adapter.type");
  s = {};
  s.alpha = false;
  expect_one(violations(s, path), "adapter.lora.alpha");
  s = {};
  s.tensors.push_back({"blk.0.attn_q.weight", {64, 64}});
  expect_one(violations(s, path), "does not end in .lora_a or .lora_b");
  s = {};
  s.tensors.pop_back();
  expect_one(violations(s, path), "missing its lora_b");
  s = {};
  s.tensors[1].second = {64, 5};  // B rank 5, A rank 4
  auto v = violations(s, path, false);
  expect_one(v, "rank mismatch");
  s = {};
  s.tensors[0].second = {4, 32};  // A's in = 32, base in = 64
  expect_one(violations(s, path), "shape mismatch");
  s = {};
  s.tensors[0].first = "blk.9.attn_q.weight.lora_a";
  s.tensors[1].first = "blk.9.attn_q.weight.lora_b";
  expect_one(violations(s, path), "no such tensor in the base model");
}

TEST(GgufLora, CheckerFlagsNonSequentialOffsets) {
  std::string path = test::scratch_dir() + "/swap.gguf";
  ASSERT_TRUE(violations(Spec{}, path).empty());
  // A and B have the same byte size: swapping their offsets keeps both aligned and in bounds
  // but breaks llama.cpp's sequential layout.
  std::string bytes = read_text_file(path);
  auto offset_pos = [&](const std::string& name) {
    size_t p = bytes.find(name);
    return p + name.size() + 4 + 2 * 8 + 4;  // name, n_dims, ne[2], type → offset
  };
  size_t pa = offset_pos("blk.0.attn_q.weight.lora_a"), pb = offset_pos("blk.0.attn_q.weight.lora_b");
  for (int k = 0; k < 8; k++) std::swap(bytes[pa + k], bytes[pb + k]);
  write_text_file_atomic(path, bytes);
  GgufFile f(path);
  ModelFile base = base_model();
  auto v = check_llamacpp_lora_rules(f, &base);
  ASSERT_FALSE(v.empty());
  EXPECT_NE(v[0].find("not the sequential, aligned offset"), std::string::npos) << v[0];
  EXPECT_THROW(load_lora_gguf(path), Error);
}

}  // namespace
}  // namespace qtune
