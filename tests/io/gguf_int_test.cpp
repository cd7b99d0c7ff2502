// Integer weights in GGUF (io/gguf_int.h): every layout re-loads bit for bit, block types are
// chosen exactly where they are exact, the save report's fp16 errors match a direct
// recomputation, every file passes llama.cpp's loader rules and llamacpp_unsupported is empty
// exactly when every weight is a block type; activation keys round-trip; llama.cpp's own block
// files load as integer weights; the real stories260K quantized two ways round-trips exactly.
#include <cmath>
#include <cstring>

#include "io/gguf_int.h"
#include "io/gguf_rules.h"
#include "quant/int_planes.h"
#include "gguf_int_util.h"

namespace qtune {
namespace {

using test::expect_bit_exact;

struct Saved {
  GgufSaveReport report;
  ModelFile back;
};

// Saves m (with a vocabulary) to dir/name, checks the llama.cpp verdicts, re-loads it.
Saved save_and_reload(const ModelFile& m, const std::string& path) {
  GgufVocab v = test::int_test_vocab(m.config.vocab_size);
  GgufSaveOptions o;
  o.vocab = &v;
  Saved s;
  s.report = save_model_gguf(m, path, o);
  GgufFile f(path);
  const auto rules = check_llamacpp_model_rules(f);
  EXPECT_TRUE(rules.empty()) << fmt::format("{}", fmt::join(rules, " | "));
  bool all_blocks = true;
  for (const auto& r : s.report.int_weights) {
    const bool block = r.type == GgmlType::Q8_0 || r.type == GgmlType::Q4_0 || r.type == GgmlType::Q4_1;
    all_blocks = all_blocks && block;
    EXPECT_EQ(r.not_block.empty(), block) << r.name << ": " << r.not_block;
    EXPECT_LE(r.fp16_scale_err, kMaxFp16ScaleError) << r.name;
    EXPECT_LE(r.fp16_min_err, kMaxFp16ScaleError) << r.name;
    EXPECT_EQ(f.find_tensor(scale_tensor_name(r.name)) != nullptr, !block) << r.name;
    EXPECT_EQ(f.has(exact_scale_key(r.name)), block) << r.name;
  }
  EXPECT_EQ(llamacpp_unsupported(f).empty(), all_blocks);
  EXPECT_EQ(s.report.llamacpp_loadable, all_blocks);
  s.back = load_gguf_model(path);
  expect_bit_exact(m, s.back);
  return s;
}

const GgufIntReport& report_of(const GgufSaveReport& r, const std::string& name) {
  for (const auto& x : r.int_weights)
    if (x.name == name) return x;
  ADD_FAILURE() << "no report for " << name;
  return r.int_weights.front();
}

struct LayoutCase {
  const char* what;
  int bits, group;
  bool symmetric, zero_free, positive;
  int hidden;
  GgmlType attn_q, ffn_down;   // expected types (attn_q rows are 64 long, ffn_down rows `hidden`)
  const char* down_reason;     // substring of ffn_down's not_block ("" for a block type)
};

TEST(GgufInt, EveryLayoutRoundTripsBitExact) {
  using G = GgmlType;
  const LayoutCase cases[] = {
      {"4-bit asym per row", 4, 0, false, false, false, 96, G::Q4_1, G::Q4_1, ""},
      {"4-bit sym", 4, 0, true, false, false, 96, G::Q4_0, G::Q4_0, ""},
      {"3-bit sym", 3, 0, true, false, false, 96, G::Q4_0, G::Q4_0, ""},
      {"8-bit sym", 8, 0, true, false, false, 96, G::Q8_0, G::Q8_0, ""},
      {"8-bit asym, values to 255", 8, 0, false, false, true, 96, G::I16, G::I16, "values need 9 bits"},
      {"16-bit codes", 16, 0, true, false, false, 96, G::I16, G::I16, "values need 16 bits"},
      {"cols 172", 4, 0, false, false, false, 172, G::Q4_1, G::I8, "row length 172 is not a multiple of 32"},
      {"8-bit sym, cols 172", 8, 0, true, false, false, 172, G::Q8_0, G::I8, "row length 172"},
      {"groups of 32", 4, 32, false, false, false, 96, G::Q4_1, G::Q4_1, ""},
      {"groups of 64", 4, 64, false, false, false, 128, G::Q4_1, G::Q4_1, ""},
      {"groups of 96 (ragged)", 4, 96, false, false, false, 128, G::Q4_1, G::Q4_1, ""},
      {"groups of 5", 4, 5, false, false, false, 96, G::I8, G::I8, "group size 5 is not a multiple of 32"},
      {"zero-free 4-bit", 4, 0, false, true, false, 172, G::Q4_1, G::I8, "row length 172"},
      {"zero-free 6-bit", 6, 0, false, true, false, 96, G::Q8_0, G::Q8_0, ""},
      {"zero-free 8-bit", 8, 0, false, true, false, 96, G::I16, G::I16, "values need 9 bits"},
  };
  const std::string dir = test::scratch_dir();
  for (const LayoutCase& c : cases) {
    SCOPED_TRACE(c.what);
    ModelFile m = test::int_test_model(c.hidden, c.positive);
    QuantSpec spec;
    spec.bits = c.bits, spec.group = c.group, spec.symmetric = c.symmetric, spec.zero_free = c.zero_free;
    quantize_projections(m, spec);
    Saved s = save_and_reload(m, dir + "/m.gguf");
    EXPECT_EQ(s.report.int_weights.size(), 14u);
    EXPECT_EQ(report_of(s.report, "blk.0.attn_q.weight").type, c.attn_q);
    const GgufIntReport& down = report_of(s.report, "blk.1.ffn_down.weight");
    EXPECT_EQ(down.type, c.ffn_down);
    EXPECT_NE(down.not_block.find(c.down_reason), std::string::npos) << down.not_block;
    // A per-row weight comes back per row; the qtune layout keeps its groups.
    const QuantMatrix& q = s.back.quantized.at("blk.0.attn_q.weight")[0];
    if (c.group == 0) {
      EXPECT_EQ(q.spec.group, 0);
    }
    if (c.attn_q == G::I8) {
      EXPECT_EQ(q.spec.group, c.group);
    }
    GgufFile f(dir + "/m.gguf");
    EXPECT_EQ(f.has(group_size_key("blk.0.attn_q.weight")), c.group == 5);
    EXPECT_EQ(f.has(exact_zero_key("blk.0.attn_q.weight")), c.attn_q == G::Q4_1);
  }
}

// Multi-plane weights (values beyond 16 bits) → one I32 tensor; 8-bit-sized ones → Q8_0.
TEST(GgufInt, PlanesFromIntegersRoundTrip) {
  ModelFile m = test::int_test_model(96);
  std::mt19937 g(9);
  for (int32_t amax : {100000, 127, 20000}) {
    SCOPED_TRACE(amax);
    std::uniform_int_distribution<int32_t> ud(-amax, amax);
    std::vector<int32_t> v(64 * 64);
    for (auto& x : v) x = ud(g);
    std::vector<float> scale(64);
    for (int r = 0; r < 64; r++) scale[r] = 1e-4f * float(r + 1) / 3.0f;
    m.tensors.erase("blk.0.attn_q.weight");
    m.quantized["blk.0.attn_q.weight"] = planes_from_integers(v.data(), scale.data(), 64, 64);
    Saved s = save_and_reload(m, test::scratch_dir() + "/p.gguf");
    const GgufIntReport& r = report_of(s.report, "blk.0.attn_q.weight");
    EXPECT_EQ(r.type, amax > 32767 ? GgmlType::I32 : amax > 127 ? GgmlType::I16 : GgmlType::Q8_0);
    EXPECT_EQ(r.planes, amax > 32767 ? 2 : 1);
    EXPECT_EQ(s.back.quantized.at("blk.0.attn_q.weight").size(), amax > 32767 ? 2u : 1u);
    std::vector<int32_t> back_v;
    std::vector<float> back_s;
    ASSERT_TRUE(integers_from_planes(s.back.quantized.at("blk.0.attn_q.weight"), back_v, back_s));
    EXPECT_EQ(back_v, v);
    EXPECT_EQ(back_s, scale);
  }
}

// The report's fp16 errors are those of the scales as stored; its weight error is what ggml's
// own dequantization (GgufFile::to_float) gives.
TEST(GgufInt, ReportMatchesDirectRecomputation) {
  ModelFile m = test::int_test_model(96);
  QuantSpec spec;
  spec.mse_search = true;  // zero points away from the min: m = −d·z is a real rounding
  quantize_projections(m, spec);
  const std::string path = test::scratch_dir() + "/r.gguf";
  Saved s = save_and_reload(m, path);
  GgufFile f(path);
  for (const auto& r : s.report.int_weights) {
    const QuantMatrix& q = m.quantized.at(r.name)[0];
    double es = 0, em = 0;
    for (size_t i = 0; i < q.scale.size(); i++) {
      const float d = q.scale[i], mm = -(d * q.zero[i]);
      es = std::max(es, std::fabs(double(fp16_to_fp32(fp32_to_fp16(d))) - d) / d);
      em = std::max(em, std::fabs(double(fp16_to_fp32(fp32_to_fp16(mm))) - mm) / (d * 15.0));
    }
    EXPECT_EQ(r.type, GgmlType::Q4_1);
    EXPECT_DOUBLE_EQ(r.fp16_scale_err, es) << r.name;
    EXPECT_DOUBLE_EQ(r.fp16_min_err, em) << r.name;
    EXPECT_GT(es, 0.0);
    const Tensor llama = f.to_float(*f.find_tensor(r.name)), exact = weight_as_float(m, r.name);
    double ew = 0;
    for (int64_t row = 0; row < q.rows; row++) {
      double err = 0, amax = 0;
      for (int64_t c = 0; c < q.cols; c++) {
        err = std::max(err, std::fabs(double(llama.data[row * q.cols + c]) - exact.data[row * q.cols + c]));
        amax = std::max(amax, std::fabs(double(exact.data[row * q.cols + c])));
      }
      ew = std::max(ew, err / amax);
    }
    EXPECT_DOUBLE_EQ(r.llamacpp_weight_err, ew) << r.name;
    EXPECT_GT(ew, 0.0);
    EXPECT_LT(ew, 2e-3);
  }
}

// Only block projections become integers: an untied output (whose name is also a LoRA target) and
// the embedding stay float, and the model stays valid.
TEST(GgufInt, QuantizeProjectionsLeavesAnUntiedOutputFloat) {
  ModelFile m = test::int_test_model(128);
  m.config.tied_classifier = false;
  m.tensors.emplace("output.weight", m.tensors.at("token_embd.weight"));
  quantize_projections(m, QuantSpec{});
  EXPECT_EQ(m.quantized.size(), size_t(7 * m.config.n_layers));
  EXPECT_TRUE(m.tensors.count("output.weight"));
  EXPECT_TRUE(m.tensors.count("token_embd.weight"));
  EXPECT_NO_THROW(validate_model(m));
}

// Scales below fp16's normal range would be misread by llama.cpp: exact layout instead.
TEST(GgufInt, TinyScalesFallBackToTheExactLayout) {
  ModelFile m = test::int_test_model(96);
  for (auto& [name, t] : m.tensors)
    if (is_projection_name(name))
      for (auto& x : t.data) x *= 1e-5f;  // 8-bit scales ~3e-8: fp16 subnormal
  QuantSpec spec;
  spec.bits = 8, spec.symmetric = true;
  quantize_projections(m, spec);
  Saved s = save_and_reload(m, test::scratch_dir() + "/t.gguf");
  for (const auto& r : s.report.int_weights) {
    EXPECT_EQ(r.type, GgmlType::I8) << r.name;
    EXPECT_NE(r.not_block.find("fp16"), std::string::npos) << r.not_block;
  }
  EXPECT_FALSE(s.report.llamacpp_loadable);
}

TEST(GgufInt, ActivationKeysRoundTrip) {
  ModelFile m = test::int_test_model(96);
  quantize_projections(m, QuantSpec{});
  const std::string path = test::scratch_dir() + "/a.gguf";
  Saved s = save_and_reload(m, path);
  EXPECT_FALSE(GgufFile(path).has("qtune.act.bits"));  // float activations: nothing written
  EXPECT_EQ(s.back.act_bits, 0);
  m.act_bits = 8;
  m.act_scales = {{"blk.0.attn_q", 0.0123f}, {"blk.1.ffn_down", 3.5f}};
  s = save_and_reload(m, path);
  GgufFile f(path);
  EXPECT_EQ(f.get_u32("qtune.act.bits"), 8u);
  EXPECT_EQ(f.get_f32("qtune.act.scale.blk.1.ffn_down"), 3.5f);
  EXPECT_EQ(s.back.act_bits, 8);
  EXPECT_EQ(s.back.act_scales, m.act_scales);
  m.act_scales["blk.7.attn_q"] = 1.0f;  // no layer 7
  EXPECT_THROW(save_model_gguf(m, path, {}), Error);
  m.act_scales.erase("blk.7.attn_q");
  m.act_scales["blk.0.attn_q"] = -1.0f;
  EXPECT_THROW(save_model_gguf(m, path, {}), Error);
}

// What has no exact layout is an Error naming the tensor, and no file is written.
TEST(GgufInt, InexactWeightsAreRefused) {
  const std::string path = test::scratch_dir() + "/x.gguf";
  auto refuse = [&](QuantMatrix q, const std::string& what) {
    ModelFile m = test::int_test_model(172);
    m.tensors.erase("blk.0.ffn_down.weight");
    m.quantized["blk.0.ffn_down.weight"].push_back(std::move(q));
    try {
      save_model_gguf(m, path, {});
      ADD_FAILURE() << "saved: " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("blk.0.ffn_down.weight"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
    EXPECT_FALSE(test::exists(path));
  };
  QuantSpec asym8;
  asym8.bits = 8;
  QuantMatrix q = empty_quant_matrix(64, 172, asym8);
  for (auto& z : q.zero) z = 0.3f;  // not an integer, not a half-integer
  refuse(q, "neither an integer nor a half-integer");
  QuantSpec asym16;
  asym16.bits = 16;
  q = empty_quant_matrix(64, 172, asym16);
  q.zero[5] = 40000.0f;  // codes 0 → value −40000: 17 bits in one plane
  refuse(q, "17-bit values");
  q = empty_quant_matrix(64, 172, asym8);
  q.scale[3] = std::nanf("");
  refuse(q, "must be finite");
}

// llama.cpp's own block files (no qtune keys): Q8_0 and Q4_0 load as integers equal to ggml's
// dequantization; Q4_1 (zero = −m/d) within float rounding, a d = 0 block exactly m.
TEST(GgufInt, ForeignBlockFilesLoadAsIntegers) {
  ModelFile m = test::int_test_model(96);
  for (auto& x : m.tensors.at("blk.0.attn_q.weight").data) x = 0.25f;  // constant rows: Q4_1 d = 0
  const std::string path = test::scratch_dir() + "/f.gguf";
  for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1}) {
    SCOPED_TRACE(ggml_type_info(t).name);
    GgufSaveOptions o;
    o.weight_type = t;
    save_model_gguf(m, path, o);
    ModelFile b = load_gguf_model(path);
    GgufFile f(path);
    ASSERT_EQ(b.quantized.size(), 14u);
    for (const auto& [name, planes] : b.quantized) {
      EXPECT_EQ(b.stored_types.at(name), ggml_type_info(t).name);
      const Tensor ours = weight_as_float(b, name), ggml = f.to_float(*f.find_tensor(name));
      const double e = test::rel_err(ours.ptr(), ggml.ptr(), size_t(ours.numel()));
      if (t == GgmlType::Q4_1 && name != "blk.0.attn_q.weight") EXPECT_LT(e, 1e-6) << name;
      else EXPECT_EQ(e, 0.0) << name;
    }
    // Constant rows have one (d, m) per row: collapsed to per-row; random ones keep groups of 32.
    EXPECT_EQ(b.quantized.at("blk.0.attn_q.weight")[0].spec.group, 0);
    EXPECT_EQ(b.quantized.at("blk.0.attn_k.weight")[0].spec.group, 32);
  }
}

TEST(GgufInt, Stories260KQuantizedRoundTripsExactly) {
  const std::string p = test::shared_dir() + "/models/stories260K/stories260K.bin";
  QT_REQUIRE_SHARED(p);
  for (bool sym8 : {false, true}) {
    SCOPED_TRACE(sym8 ? "8-bit symmetric" : "4-bit per row");
    ModelFile m = load_model(p);
    QuantSpec spec;
    if (sym8) spec.bits = 8, spec.symmetric = true;
    quantize_projections(m, spec);
    ASSERT_EQ(m.quantized.size(), 35u);
    Saved s = save_and_reload(m, test::scratch_dir() + "/s.gguf");
    for (const auto& r : s.report.int_weights) {
      const bool down = r.name.find("ffn_down") != std::string::npos;  // rows of 172
      EXPECT_EQ(r.type, down ? GgmlType::I8 : sym8 ? GgmlType::Q8_0 : GgmlType::Q4_1) << r.name;
      if (!down) {
        EXPECT_LT(r.llamacpp_weight_err, 2e-3) << r.name;
      }
    }
    EXPECT_FALSE(s.report.llamacpp_loadable);  // ffn_down needs the I8 layout
    EXPECT_EQ(s.report.llamacpp_reasons.size(), 5u);
    EXPECT_EQ(s.back.config.hidden_dim, 172);
  }
}

}  // namespace
}  // namespace qtune
