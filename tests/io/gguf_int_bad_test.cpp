// Integer-weight GGUFs that must not load (each an Error naming the file and the tensor/key,
// never a crash: this binary also runs under ASan), and llama.cpp's model rules flagged one by one.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>

#include "core/file.h"
#include "io/gguf_int.h"
#include "io/gguf_rules.h"
#include "gguf_int_util.h"

namespace qtune {
namespace {

// hidden 172: Q4_1 projections with exact keys, ffn_down in the I8 layout; int8 activations.
std::string write_base(const std::string& dir, bool vocab = true, const std::string& file = "base.gguf") {
  ModelFile m = test::int_test_model(172);
  quantize_projections(m, QuantSpec{});
  m.act_bits = 8;
  m.act_scales["blk.0.attn_q"] = 0.5f;
  GgufVocab v = test::int_test_vocab(40);
  GgufSaveOptions o;
  if (vocab) o.vocab = &v;
  const std::string path = dir + "/" + file;
  save_model_gguf(m, path, o);
  return path;
}

struct Raw {
  std::vector<int64_t> ne;
  GgmlType type;
  std::vector<uint8_t> bytes;
};
// Called for every tensor of the source; return false to drop it.
using TensorEdit = std::function<bool(const std::string& name, Raw& t)>;

// Copies src to dst: keys (without `drop`, then `set`), tensors through `edit`, plus `extra`.
void rewrite(const std::string& src, const std::string& dst, const TensorEdit& edit,
             const std::vector<std::string>& drop = {},
             const std::vector<std::pair<std::string, GgufValue>>& set = {},
             const std::vector<std::pair<std::string, Raw>>& extra = {}) {
  GgufFile f(src);
  GgufWriter w;
  for (const auto& [k, v] : f.metadata())
    if (std::find(drop.begin(), drop.end(), k) == drop.end()) w.set(k, v);
  for (const auto& [k, v] : set) w.set(k, v);
  for (const auto& t : f.tensors()) {
    Raw r{t.ne, t.type, std::vector<uint8_t>(t.data, t.data + t.nbytes)};
    if (!edit || edit(t.name, r)) w.add_raw_tensor(t.name, r.ne, r.type, std::move(r.bytes));
  }
  for (const auto& [name, r] : extra) w.add_raw_tensor(name, r.ne, r.type, r.bytes);
  w.write(dst);
}

std::string load_error(const std::string& path) {
  try {
    load_gguf_model(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_error(const std::string& path, const std::vector<std::string>& parts) {
  const std::string e = load_error(path);
  ASSERT_FALSE(e.empty()) << "loaded without error, expected: " << parts[0];
  EXPECT_NE(e.find(path), std::string::npos) << e;
  for (const auto& p : parts) EXPECT_NE(e.find(p), std::string::npos) << "'" << p << "' not in: " << e;
}

Raw f32_raw(std::vector<int64_t> ne, std::vector<float> v) {
  Raw r{std::move(ne), GgmlType::F32, std::vector<uint8_t>(v.size() * 4)};
  std::memcpy(r.bytes.data(), v.data(), r.bytes.size());
  return r;
}

GgufValue f32_array(std::vector<float> v) {
  std::vector<GgufValue> e;
  for (float x : v) e.push_back(GgufValue::scalar_f(GgufType::FLOAT32, x));
  return GgufValue::array(GgufType::FLOAT32, std::move(e));
}

GgufValue i32_array(std::vector<int32_t> v) {
  std::vector<GgufValue> e;
  for (int32_t x : v) e.push_back(GgufValue::scalar_i(GgufType::INT32, x));
  return GgufValue::array(GgufType::INT32, std::move(e));
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_TRUE(f);
  ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
  std::fclose(f);
}

TEST(GgufIntBad, TruncatedAnywhere) {
  const std::string dir = test::scratch_dir(), base = write_base(dir);
  ASSERT_EQ(load_error(base), "");
  const std::string bytes = read_text_file(base), cut = dir + "/cut.gguf";
  GgufFile f(base);
  const auto& last = f.tensors().back();
  const size_t end = f.data_offset() + last.offset + last.nbytes;  // the padding after it is optional
  int n = 0;
  for (size_t k = 0; k < end; k += end / 120 | 1, n++) {
    write_bytes(cut, bytes.substr(0, k));
    const std::string e = load_error(cut);
    ASSERT_FALSE(e.empty()) << "cut at " << k << " loaded";
    ASSERT_NE(e.find(cut), std::string::npos) << e;
  }
  EXPECT_GT(n, 100);
}

TEST(GgufIntBad, ExactLayoutScaleTensor) {
  const std::string dir = test::scratch_dir(), base = write_base(dir), p = dir + "/bad.gguf";
  const std::string down = "blk.0.ffn_down.weight", scale = "blk.0.ffn_down.scale";
  rewrite(base, p, [&](const std::string& n, Raw&) { return n != scale; });
  expect_error(p, {"tensor '" + scale + "': missing", "I8 weight"});
  rewrite(base, p, [&](const std::string& n, Raw& r) {
    if (n == scale) r = f32_raw({2, 64}, std::vector<float>(128, 0.1f));
    return true;
  });
  expect_error(p, {scale, "2 scales per row, expected 1"});
  rewrite(base, p, [&](const std::string& n, Raw& r) {
    if (n == scale) r = f32_raw({1, 32}, std::vector<float>(32, 0.1f));
    return true;
  });
  expect_error(p, {scale, "expected F32 [64, groups]"});
  rewrite(base, p, [&](const std::string& n, Raw& r) {
    if (n == scale) r.type = GgmlType::I32;  // same byte size, wrong type
    return true;
  });
  expect_error(p, {scale, "expected F32"});
  for (float bad : {std::nanf(""), INFINITY, 0.0f, -0.5f}) {
    rewrite(base, p, [&](const std::string& n, Raw& r) {
      if (n == scale) std::memcpy(r.bytes.data() + 3 * 4, &bad, 4);
      return true;
    });
    expect_error(p, {scale, "scale [3, 0]", "finite and positive"});
  }
  rewrite(base, p, nullptr, {}, {{group_size_key(down), GgufValue::scalar_u(GgufType::UINT32, 5)}});
  expect_error(p, {scale, "1 scales per row, expected 35"});
  rewrite(base, p, nullptr, {}, {}, {{"blk.0.attn_norm.scale", f32_raw({1}, {1.0f})}});
  expect_error(p, {"tensor 'blk.0.attn_norm.scale'", "is not an I8/I16/I32 weight", "a float tensor"});
  rewrite(base, p, nullptr, {}, {}, {{"blk.0.attn_q.scale", f32_raw({1, 64}, std::vector<float>(64, 1.0f))}});
  expect_error(p, {"tensor 'blk.0.attn_q.scale'", "(found Q4_1)"});
  rewrite(base, p, [&](const std::string& n, Raw& r) {  // I8 → I32 (4× the bytes), one value ≥ 2^30
    if (n != down) return true;
    std::vector<uint8_t> b(r.bytes.size() * 4, 0);
    const int32_t big = 1 << 30;
    std::memcpy(b.data() + 40, &big, 4);
    r = {r.ne, GgmlType::I32, std::move(b)};
    return true;
  });
  expect_error(p, {"tensor '" + down + "'", "does not fit"});
}

TEST(GgufIntBad, ExactKeysOfBlockWeights) {
  const std::string dir = test::scratch_dir(), base = write_base(dir), p = dir + "/bad.gguf";
  const std::string q = "blk.1.attn_q.weight", ks = exact_scale_key(q), kz = exact_zero_key(q);
  const std::vector<float> good = GgufFile(base).get_arr_f32(ks);
  ASSERT_EQ(good.size(), 64u);  // per row
  std::vector<float> v = good;
  v.pop_back();
  rewrite(base, p, nullptr, {}, {{ks, f32_array(v)}});
  expect_error(p, {"key '" + ks + "'", "63 values"});
  v = good;
  v[7] *= 1.5f;
  rewrite(base, p, nullptr, {}, {{ks, f32_array(v)}});
  expect_error(p, {"key '" + ks + "'", "value [7]", "does not round to the fp16 d"});
  v = good;
  v[2] = std::nanf("");
  rewrite(base, p, nullptr, {}, {{ks, f32_array(v)}});
  expect_error(p, {"key '" + ks + "'", "value [2]", "finite and positive"});
  rewrite(base, p, nullptr, {}, {{ks, GgufValue::string("x")}});
  expect_error(p, {"key '" + ks + "'", "array of float32"});
  rewrite(base, p, nullptr, {kz});
  expect_error(p, {"key '" + kz + "': missing"});
  v = GgufFile(base).get_arr_f32(kz);
  v[0] += 1.0f;
  rewrite(base, p, nullptr, {}, {{kz, f32_array(v)}});
  expect_error(p, {"key '" + kz + "'", "does not give the fp16 m"});
  rewrite(base, p, nullptr, {}, {{exact_scale_key("blk.0.ffn_down.weight"), f32_array(good)}});
  expect_error(p, {"key 'qtune.exact_scale.blk.0.ffn_down.weight'", "is not a Q8_0/Q4_0/Q4_1 weight"});
  rewrite(base, p, nullptr, {}, {{exact_scale_key("blk.9.attn_q.weight"), f32_array(good)}});
  expect_error(p, {"key 'qtune.exact_scale.blk.9.attn_q.weight'"});
  // Without the keys (a llama.cpp file) a non-finite block d is caught too.
  rewrite(base, p, [&](const std::string& n, Raw& r) {
    if (n == q) r.bytes[20] = 0x00, r.bytes[21] = 0x7c;  // row 0, block 1: d = inf (fp16 0x7c00)
    return true;
  }, {ks, kz});
  expect_error(p, {"tensor '" + q + "'", "row 0, block 1", "not finite"});
}

TEST(GgufIntBad, ActivationKeysAndTypes) {
  const std::string dir = test::scratch_dir(), base = write_base(dir), p = dir + "/bad.gguf";
  rewrite(base, p, nullptr, {}, {{"qtune.act.bits", GgufValue::scalar_u(GgufType::UINT32, 1)}});
  expect_error(p, {"key 'qtune.act.bits'", "activation bits"});
  rewrite(base, p, nullptr, {}, {{"qtune.act.scale.blk.5.attn_q", GgufValue::scalar_f(GgufType::FLOAT32, 1)}});
  expect_error(p, {"key 'qtune.act.scale.blk.5.attn_q'", "not a projection"});
  rewrite(base, p, nullptr, {}, {{"qtune.act.scale.blk.0.attn_q", GgufValue::scalar_f(GgufType::FLOAT32, NAN)}});
  expect_error(p, {"key 'qtune.act.scale.blk.0.attn_q'", "finite and positive"});
  // per-step tables (EfficientDM): every field checked, and a LLaMA refuses them altogether
  const auto u32 = [](uint32_t v) { return GgufValue::scalar_u(GgufType::UINT32, v); };
  const std::string t = "qtune.act.table.blk.0.attn_q";
  rewrite(base, p, nullptr, {}, {{t + ".bits", u32(4)}});
  expect_error(p, {"key '" + t + ".stride' is missing"});
  rewrite(base, p, nullptr, {}, {{t + ".bits", u32(9)}, {t + ".stride", u32(40)}, {t + ".scale", f32_array({0.5f})},
                                 {t + ".zero", i32_array({3})}});
  expect_error(p, {"activation table of 'blk.0.attn_q'", "9 activation bits"});
  rewrite(base, p, nullptr, {}, {{t + ".bits", u32(4)}, {t + ".stride", u32(40)}, {t + ".scale", f32_array({0.5f})},
                                 {t + ".zero", i32_array({16})}});
  expect_error(p, {"step 0: zero point 16 is outside 0..15"});
  rewrite(base, p, nullptr, {}, {{t + ".bits", u32(4)}, {t + ".stride", u32(40)}, {t + ".scale", f32_array({-1.0f})},
                                 {t + ".zero", i32_array({3})}});
  expect_error(p, {"step 0: scale -1 must be finite and positive"});
  rewrite(base, p, nullptr, {}, {{t + ".bits", u32(4)}, {t + ".stride", u32(40)}, {t + ".scale", f32_array({0.5f})},
                                 {t + ".zero", i32_array({3})}});
  expect_error(p, {"per-sampling-step activation tables", "not a LLaMA"});
  rewrite(base, p, [](const std::string& n, Raw& r) {  // token_embd as I32: same bytes, an integer type
    if (n == "token_embd.weight") r.type = GgmlType::I32;
    return true;
  });
  expect_error(p, {"tensor 'token_embd.weight'", "only for the projections"});
}

// ---- llama.cpp's loader rules ---------------------------------------------------------------

std::vector<std::string> rules(const std::string& path) { return check_llamacpp_model_rules(GgufFile(path)); }

void expect_rule(const std::vector<std::string>& v, const std::string& what) {
  bool found = false;
  for (const auto& s : v) found = found || s.find(what) != std::string::npos;
  EXPECT_TRUE(found) << "'" << what << "' not among: " << fmt::format("{}", fmt::join(v, " | "));
}

TEST(GgufIntRules, EachRuleIsFlagged) {
  const std::string dir = test::scratch_dir(), base = write_base(dir), p = dir + "/r.gguf";
  EXPECT_TRUE(rules(base).empty()) << fmt::format("{}", fmt::join(rules(base), " | "));
  expect_rule(rules(write_base(dir, false, "novocab.gguf")), "key 'tokenizer.ggml.model' is missing");
  rewrite(base, p, nullptr, {"llama.attention.layer_norm_rms_epsilon"});
  expect_rule(rules(p), "key 'llama.attention.layer_norm_rms_epsilon' is missing");
  rewrite(base, p, nullptr, {}, {{"llama.block_count", GgufValue::scalar_u(GgufType::UINT64, 2)}});
  expect_rule(rules(p), "key 'llama.block_count' must be uint32, found uint64");
  rewrite(base, p, nullptr, {}, {{"general.architecture", GgufValue::string("gpt2")}});
  expect_rule(rules(p), "'gpt2', not 'llama'");
  rewrite(base, p, nullptr, {}, {{"llama.rope.dimension_count", GgufValue::scalar_u(GgufType::UINT32, 4)}});
  expect_rule(rules(p), "requires the head size 16");
  rewrite(base, p, nullptr, {}, {{"llama.feed_forward_length", GgufValue::scalar_u(GgufType::UINT32, 128)}});
  expect_rule(rules(p), "tensor 'blk.0.ffn_gate.weight': ne = [64, 172], llama.cpp expects [64, 128]");
  rewrite(base, p, [](const std::string& n, Raw&) { return n != "blk.1.ffn_up.weight"; });
  expect_rule(rules(p), "tensor 'blk.1.ffn_up.weight' is missing");
  // Swap the data offsets of two equal-sized tensors: still a valid GGUF, not sequential.
  std::string b = read_text_file(base);
  auto offset_pos = [&](const std::string& name) { return b.find(name + std::string(1, '\x02')) + name.size() + 4 + 16 + 4; };
  const size_t pk = offset_pos("blk.0.attn_k.weight"), pv = offset_pos("blk.0.attn_v.weight");
  std::string ok = b.substr(pk, 8), ov = b.substr(pv, 8);
  b.replace(pk, 8, ov);
  b.replace(pv, 8, ok);
  write_bytes(p, b);
  expect_rule(rules(p), "tensor 'blk.0.attn_k.weight': offset");
  expect_rule(rules(p), "is not the sequential, aligned offset");
}

TEST(GgufIntRules, UnsupportedListsIntegerLayoutsOnly) {
  const std::string dir = test::scratch_dir(), base = write_base(dir);
  const auto why = llamacpp_unsupported(GgufFile(base));
  ASSERT_EQ(why.size(), 4u) << fmt::format("{}", fmt::join(why, " | "));  // 2 × (I8 ffn_down + its .scale)
  expect_rule(why, "tensor 'blk.0.ffn_down.weight' is I8");
  expect_rule(why, "tensor 'blk.1.ffn_down.scale' is not a llama tensor");
  ModelFile m = test::int_test_model(96);
  quantize_projections(m, QuantSpec{});
  const std::string p = dir + "/q.gguf";
  save_model_gguf(m, p, {});
  EXPECT_TRUE(llamacpp_unsupported(GgufFile(p)).empty());
}

}  // namespace
}  // namespace qtune
