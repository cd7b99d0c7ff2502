// Golden test of the integer methods against PyTorch: tests/data/stories260K_int_ref.bin is written
// by tools/torch_reference_int.py (independent float64 QA-LoRA / IntLoRA-MUL / IntLoRA-SHIFT on
// stories260K, integer decisions in float32; format and contents at the top of that script). The
// fixed A, B are the LoRA golden test's, from tests/data/stories260K_ref.bin.
//
// Per method, on the real model with the reference's settings (4-bit per-row base, rank 4, seed 1):
//   base      the quantized base, exactly (qalora: s0, z and the integers; intlora: s·W_int + R bit
//             for bit, which covers R's draws, VMC, the MSE search and W_int; the count of W_int = 0;
//             MUL: the frozen second quantizer s̄, z̄)
//   loss      relative 1e-6 (float32 model vs float64 reference over the same integers)
//   grads     every A, B (and qalora's scale multiplier u), relative 2e-4 in norm per tensor
//   merge     the deployed integers exactly, and their scales bit for bit; no element rounded
// Integer arrays are compared through per-row checksums Σ_c v·(c + 1) (the dump would be megabytes
// otherwise); a mismatching row is named.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "io/model_file.h"
#include "models/llama.h"
#include "quant/int_planes.h"
#include "ref_dump.h"
#include "test_util.h"

using namespace qtune;
using test::RefArray;
using test::RefDump;

namespace {

const char* const kTargets[7] = {"q", "k", "v", "o", "gate", "up", "down"};
const char* const kTensors[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

// Measured worst cases over 1 and 2 threads (float32 vs float64 with identical integers): loss
// 1.9e-7; gradients 6.3e-6 (qalora, mul) and 6.5e-5 (shift: its factor 2^k/|U| inherits the float32
// error of U where s + (R + B·A)/W_int cancels to ~1e-7, up to 2e-3 relative on a few elements).
constexpr double kLossTol = 1e-6;
constexpr double kGradTol = 2e-4;

struct IntGolden : ::testing::Test {
  std::string model_path = test::shared_dir() + "/models/stories260K/stories260K.bin";
  RefDump ref, lora;  // this test's dump; the LoRA golden dump (A and B)
  std::vector<int> tokens, targets;
  int B = 0, T = 0;

  void SetUp() override {
    QT_REQUIRE_SHARED(model_path);
    ref = RefDump(test::test_data("stories260K_int_ref.bin"));
    lora = RefDump(test::test_data("stories260K_ref.bin"));
    tokens = ref.ints("tokens");
    targets = ref.ints("targets");
    B = static_cast<int>(ref.at("tokens").shape[0]);
    T = static_cast<int>(ref.at("tokens").shape[1]);
    ASSERT_EQ(tokens, lora.ints("tokens")) << "the two dumps were made from different batches: regenerate both";
    double fp = 0;  // Σ|A| + Σ|B| of the adapters the int reference used
    for (const auto& [name, a] : lora.arrays())
      if (name.starts_with("lora.blk.")) for (double v : a.data) fp += std::fabs(v);
    ASSERT_NEAR(fp, ref.scalar("ab_fingerprint"), 1e-12 * fp)
        << "stories260K_ref.bin and stories260K_int_ref.bin disagree on A, B: regenerate both";
  }

  std::unique_ptr<Llama> build(const std::string& method) {
    const RefArray& s = ref.at("settings");  // bits, rank, seed, ...
    MethodOptions o;
    o.method = method;
    o.bits = static_cast<int>(s.data[0]);
    o.rank = static_cast<int>(s.data[1]);
    return std::make_unique<Llama>(load_model(model_path), o, static_cast<uint64_t>(s.data[2]));
  }

  // Calls f(layer, stem, slot) for every projection.
  template <class F>
  void for_each_slot(Llama& model, F&& f) {
    for (int l = 0; l < model.config().n_layers; ++l)
      for (int i = 0; i < 7; ++i) f(l, fmt::format("blk.{}.{}", l, kTensors[i]), model.slot(l, kTargets[i]));
  }

  // A, B from the LoRA dump; qalora's scale multipliers from this one.
  void set_trainables(Llama& model, const std::string& method) {
    for (auto& prm : model.trainable()) {
      const bool scale = prm.name.ends_with(".qalora_scale");
      const RefArray& v = scale ? ref.at(method + "." + prm.name) : lora.at("lora." + prm.name);
      ASSERT_EQ(v.data.size(), size_t(prm.numel)) << prm.name;
      for (int64_t i = 0; i < prm.numel; ++i) prm.value[i] = static_cast<float>(v.data[i]);
    }
  }

  void check_loss_and_grads(Llama& model, const std::string& method) {
    const float loss = model.forward(tokens.data(), targets.data(), B, T);
    const double want = ref.scalar(method + ".loss");
    std::printf("%s loss %.7f vs %.7f (relative %.2g)\n", method.c_str(), loss, want, std::fabs(loss / want - 1));
    EXPECT_NEAR(loss, want, kLossTol * want);
    model.zero_grad();
    model.backward();
    double worst = 0;
    std::string worst_name;
    int n = 0;
    for (auto& prm : model.trainable()) {
      const RefArray& g = ref.at(method + ".grad." + prm.name);
      ASSERT_EQ(g.data.size(), size_t(prm.numel)) << prm.name;
      const double e = test::rel_err(prm.grad, g.data.data(), g.data.size());
      EXPECT_LT(e, kGradTol) << prm.name;
      if (e > worst) worst = e, worst_name = prm.name;
      ++n;
    }
    std::printf("%s: %d gradients, worst relative error %.3g (%s)\n", method.c_str(), n, worst, worst_name.c_str());
  }

  // Rows of `stem` whose checksum differs from ref[key][o]; each is reported by name.
  template <class F>
  int check_rows(const std::string& key, int64_t rows, int64_t cols, F&& value_at) {
    const RefArray& want = ref.at(key);
    EXPECT_EQ(want.data.size(), size_t(rows)) << key;
    int bad = 0;
    for (int64_t o = 0; o < rows && o < int64_t(want.data.size()); ++o) {
      const double got = test::row_checksum(cols, [&](int64_t c) { return value_at(o, c); });
      if (got != want.data[o] && ++bad <= 3) ADD_FAILURE() << key << " row " << o << ": " << got << " vs " << want.data[o];
    }
    return bad;
  }

  // The deployed integers v[out, in] and row scales of a merged slot (one or two planes).
  static void merged_integers(const ModelFile& mf, const std::string& stem, std::vector<int32_t>& v,
                              std::vector<float>& scale) {
    const auto it = mf.quantized.find(stem + ".weight");
    ASSERT_NE(it, mf.quantized.end()) << stem << " did not merge to integers";
    ASSERT_TRUE(integers_from_planes(it->second, v, scale)) << stem;
  }
};

}  // namespace

TEST_F(IntGolden, QaLoraBaseLossGradientsAndMergedCodes) {
  auto model = build("qalora");
  int bad = 0;
  for_each_slot(*model, [&](int, const std::string& stem, Linear<float>& s) {
    // base_weight() = s0·(q − z) in float: recover q − z with the reference's s0, then both must agree
    const Tensor w0 = s.base_weight();
    const RefArray& s0 = ref.at("qalora.base." + stem + ".scale");
    auto k_at = [&](int64_t o, int64_t c) { return std::round(w0.data[o * s.in() + c] / float(s0.data[o])); };
    for (int64_t o = 0; o < s.out(); ++o)
      for (int64_t c = 0; c < s.in(); ++c)
        bad += w0.data[o * s.in() + c] != float(s0.data[o]) * static_cast<float>(k_at(o, c));
    bad += check_rows("qalora.base." + stem + ".check", s.out(), s.in(), k_at);
  });
  EXPECT_EQ(bad, 0) << "base elements or rows that differ from the reference quantization";

  set_trainables(*model, "qalora");
  check_loss_and_grads(*model, "qalora");

  int64_t inexact = -1;
  const ModelFile mf = model->merged(&inexact);
  EXPECT_EQ(inexact, 0);
  int bad_rows = 0, bad_scales = 0;
  for_each_slot(*model, [&](int, const std::string& stem, Linear<float>& s) {
    const auto& planes = mf.quantized.at(stem + ".weight");
    ASSERT_EQ(planes.size(), 1u);
    const QuantMatrix& m = planes[0];
    const RefArray &s0 = ref.at("qalora.base." + stem + ".scale"), &z = ref.at("qalora.base." + stem + ".zero"),
                   &u = ref.at("qalora." + stem + ".qalora_scale");
    for (int64_t o = 0; o < s.out(); ++o)  // the learned scale s0·u (float), the base's zero point
      bad_scales += m.scale[o] != float(s0.data[o]) * float(u.data[o]) || m.zero[o] != float(z.data[o]);
    bad_rows += check_rows("qalora.merged." + stem + ".check", s.out(), s.in(),
                           [&](int64_t o, int64_t c) { return m.code(o, c); });
  });
  EXPECT_EQ(bad_scales, 0);
  EXPECT_EQ(bad_rows, 0) << "rows whose merged codes differ from the reference";
}

namespace {

// The IntLoRA base: s·W_int + R bit for bit per row (R's draws, VMC, the MSE search, W_int), the
// zero-weight count, and MUL's frozen second quantizer.
void check_intlora_base(IntGolden& t, Llama& model, bool mul) {
  int bad = 0;
  t.for_each_slot(model, [&](int, const std::string& stem, Linear<float>& s) {
    const Tensor b = s.base_weight();
    bad += t.check_rows("intlora.base." + stem + ".check", s.out(), s.in(),
                        [&](int64_t o, int64_t c) { return b.data[o * s.in() + c]; });
    double zeros = -1;
    for (const auto& [k, v] : s.stats())
      if (k == "zero_weights") zeros = v;
    EXPECT_EQ(zeros, t.ref.scalar("intlora.base." + stem + ".zeros")) << stem;
  });
  EXPECT_EQ(bad, 0) << "rows of s·W_int + R that differ from the reference";
  if (!mul) return;
  int checked = 0;
  for (auto& prm : model.state()) {
    const std::string key = prm.name.ends_with(".intlora_ubar_scale")  ? "ubar_scale"
                            : prm.name.ends_with(".intlora_ubar_zero") ? "ubar_zero"
                                                                       : "";
    if (key.empty()) continue;
    const std::string stem = prm.name.substr(0, prm.name.rfind('.'));
    const RefArray& want = t.ref.at("intlora-mul." + stem + "." + key);
    ASSERT_EQ(want.data.size(), size_t(prm.numel));
    int bad_rows = 0;
    for (int64_t o = 0; o < prm.numel; ++o) bad_rows += prm.value[o] != float(want.data[o]);
    EXPECT_EQ(bad_rows, 0) << prm.name << ": rows of the second quantizer that differ";
    ++checked;
  }
  EXPECT_EQ(checked, 70);
}

}  // namespace

TEST_F(IntGolden, IntLoraMulBaseLossGradientsAndMergedProducts) {
  auto model = build("intlora-mul");
  check_intlora_base(*this, *model, true);
  set_trainables(*model, "intlora-mul");
  check_loss_and_grads(*model, "intlora-mul");

  int64_t inexact = -1;
  const ModelFile mf = model->merged(&inexact);
  EXPECT_EQ(inexact, 0);
  int bad_rows = 0, bad_scales = 0;
  for_each_slot(*model, [&](int, const std::string& stem, Linear<float>& s) {
    std::vector<int32_t> p;
    std::vector<float> scale;
    merged_integers(mf, stem, p, scale);
    const RefArray& sbar = ref.at("intlora-mul." + stem + ".ubar_scale");
    for (int64_t o = 0; o < s.out(); ++o) bad_scales += scale[o] != float(sbar.data[o]);  // weight = s̄·P
    bad_rows += check_rows("intlora-mul.merged." + stem + ".check", s.out(), s.in(),
                           [&](int64_t o, int64_t c) { return p[o * s.in() + c]; });
  });
  EXPECT_EQ(bad_scales, 0);
  EXPECT_EQ(bad_rows, 0) << "rows whose P = U_int·W_int differ from the reference";
}

TEST_F(IntGolden, IntLoraShiftBaseLossGradientsAndMergedWeights) {
  auto model = build("intlora-shift");
  check_intlora_base(*this, *model, false);
  set_trainables(*model, "intlora-shift");
  check_loss_and_grads(*model, "intlora-shift");

  int64_t inexact = -1;
  const ModelFile mf = model->merged(&inexact);
  EXPECT_EQ(inexact, 0);
  int bad_rows = 0;
  for_each_slot(*model, [&](int, const std::string& stem, Linear<float>& s) {
    std::vector<int32_t> p;
    std::vector<float> scale;
    merged_integers(mf, stem, p, scale);
    // P·2^k_base = sign(U)·W_int·2^k exactly (dyadic): whatever k_base qtune picked per row
    bad_rows += check_rows("intlora-shift.merged." + stem + ".check", s.out(), s.in(), [&](int64_t o, int64_t c) {
      return static_cast<double>(p[o * s.in() + c]) * static_cast<double>(scale[o]);
    });
  });
  EXPECT_EQ(bad_rows, 0) << "rows whose sign·W_int·2^k differ from the reference";
}
