// EfficientDM's quantized DiT (models/efficientdm.h, train/distill.h): the deployed model
// samples exactly as the fake-quant student it was merged from (bit for bit, also with fewer
// sampling steps than the tables have entries), the first/last layers stay 8-bit without an
// adapter, and the scale-aware learning rates follow the layers' mean weight scales.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <memory>

#include "adapters/talsq.h"
#include "models/dit_sampler.h"
#include "models/efficientdm.h"
#include "models/tiny_dit.h"
#include "train/distill.h"

using namespace qtune;

namespace {

struct Student {
  std::unique_ptr<Dit<float>> teacher, student;
  std::shared_ptr<std::map<std::string, double>> scales = std::make_shared<std::map<std::string, double>>();
};

// A random tiny teacher (every tensor nonzero), and a W4A4 student calibrated on its
// trajectories and distilled for two trajectories at a high rate (so the adapters, the weight
// scales and the activation tables have all moved).
Student trained_student(int steps, int act_steps) {
  DitConfig c = test::tiny_dit_config();
  c.dim = 16;
  const DitFile f = test::random_dit(c, 9, 0.3);
  Student s;
  MethodOptions frozen;
  frozen.frozen = true;
  s.teacher = std::make_unique<Dit<float>>(f, frozen, 0);
  EfficientDmOptions e;
  e.rank = 4;
  e.steps = act_steps;
  e.stride = 1000 / act_steps;
  e.act_lr = 0.05f;
  s.student = std::make_unique<Dit<float>>(f, efficientdm_method(e), 1, false, efficientdm_slots<float>(e, s.scales));
  DistillOptions o;
  o.iters = 2;
  o.batch = 3;
  o.steps = steps;
  o.classes = {0, 1, 2};
  o.lr = 2e-2f;
  o.calib = 4;
  o.progress = false;
  EXPECT_EQ(calibrate_student(*s.teacher, *s.student, o), 5 + 7 * c.depth);
  std::vector<Param<float>> params = s.student->trainable();
  apply_scale_aware_lr(params, *s.scales);
  const DistillResult r = distill(*s.teacher, *s.student, params, o);
  EXPECT_EQ(r.optimizer_steps, 2 * steps);
  return s;
}

std::vector<float> sample(Dit<float>& m, int steps) {
  DitSampleOptions o;
  o.steps = steps;
  o.eta = 1.0f;
  o.guidance = 2.0f;
  o.seed = 77;
  return dit_sample(m, {0, 1, 2, 3, 0}, o);  // 3 = the null class
}

}  // namespace

TEST(EfficientDm, DeployedSamplerEqualsTheFakeQuantSamplerBitForBit) {
  Student s = trained_student(10, 10);
  const DitFile merged = s.student->merged();
  const std::string path = (std::filesystem::temp_directory_path() / "qtune_efficientdm_test.gguf").string();
  save_dit(path, merged);
  const DitFile f = load_dit(path);
  std::filesystem::remove(path);
  // every slot deployed in integers with its table: 8-bit first/last layers, 4-bit blocks
  EXPECT_EQ(f.quantized.size(), dit_slot_stems(f.config).size());
  ASSERT_EQ(f.act.tables.size(), dit_slot_stems(f.config).size());
  for (const auto& [stem, t] : f.act.tables) {
    EXPECT_EQ(t.bits, is_efficientdm_edge_slot(stem) ? 8 : 4) << stem;
    EXPECT_EQ(t.steps(), 10) << stem;
    EXPECT_EQ(f.quantized.at(stem + ".weight").at(0).spec.bits, is_efficientdm_edge_slot(stem) ? 8 : 4) << stem;
  }
  MethodOptions frozen;
  frozen.frozen = true;
  Dit<float> deployed(f, frozen, 0);
  for (int steps : {10, 5}) {  // 5: every second entry of the 10-entry tables
    SCOPED_TRACE(steps);
    const std::vector<float> a = sample(*s.student, steps), b = sample(deployed, steps);
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
    const std::vector<float> t = sample(*s.teacher, steps);  // quantization did change something
    EXPECT_NE(std::memcmp(a.data(), t.data(), a.size() * sizeof(float)), 0);
  }
}

// The ablation without TALSQ: one entry serves every step, and deploys the same way.
TEST(EfficientDm, OneScaleForAllStepsDeploysToo) {
  Student s = trained_student(6, 1);
  const DitFile merged = s.student->merged();
  for (const auto& [stem, t] : merged.act.tables) EXPECT_EQ(t.steps(), 1) << stem;
  MethodOptions frozen;
  frozen.frozen = true;
  Dit<float> deployed(merged, frozen, 0);
  const std::vector<float> a = sample(*s.student, 6), b = sample(deployed, 6);
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
}

// Only the block slots carry QALoRA; the LoRA factors of a layer train at lr · m_l / mean(m).
TEST(EfficientDm, ScaleAwareLearningRatesFollowTheMeanWeightScale) {
  DitConfig c = test::tiny_dit_config();
  const DitFile f = test::random_dit(c, 4, 0.3);
  EfficientDmOptions e;
  e.rank = 2;
  auto scales = std::make_shared<std::map<std::string, double>>();
  Dit<float> student(f, efficientdm_method(e), 1, false, efficientdm_slots<float>(e, scales));
  EXPECT_EQ(scales->size(), size_t(7 * c.depth));
  std::vector<Param<float>> params = student.trainable();
  const auto [lo, hi] = apply_scale_aware_lr(params, *scales);
  EXPECT_LT(lo, hi);
  double mean = 0;
  for (const auto& [stem, m] : *scales) mean += m / double(scales->size());
  int lora = 0;
  for (const auto& p : params) {
    const bool a = p.name.ends_with(".lora_a"), b = p.name.ends_with(".lora_b");
    EXPECT_FALSE((a || b) && is_efficientdm_edge_slot(p.name.substr(0, p.name.rfind('.')))) << p.name;
    if (!a && !b) continue;
    ++lora;
    const std::string stem = p.name.substr(0, p.name.rfind('.'));
    EXPECT_NEAR(p.lr_scale, scales->at(stem) / mean, 1e-6) << p.name;
  }
  EXPECT_EQ(lora, 2 * 7 * c.depth);
}
