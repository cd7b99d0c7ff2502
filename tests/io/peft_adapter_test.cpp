// PEFT LoRA adapter folders (io/peft_adapter.h): the round trip is bit-exact, the file holds what
// PEFT expects (names, shapes, the q/k lora_B rows in Hugging Face's order, the config keys), and
// every PEFT option or tensor qtune cannot apply is refused in one line naming the file.
#include "io/peft_adapter.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "io/ggml_blocks.h"
#include "io/projections.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace qtune {
namespace {

using test::error_of;

// dim 16 in 4 heads of 4 (k/v: 2 heads), hidden 24, 2 layers.
LlamaConfig tiny_config() {
  LlamaConfig c;
  c.dim = 16, c.hidden_dim = 24, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.vocab_size = 32, c.seq_len = 8;
  return c;
}

Tensor random_tensor(Shape s, Rng& rng) {
  Tensor t(std::move(s));
  for (int64_t i = 0; i < t.numel(); ++i) t.ptr()[i] = rng.uniform(-1.0f, 1.0f);
  return t;
}

PeftLora random_adapter(const LlamaConfig& c, std::vector<std::string> targets, int rank = 3, float alpha = 6.5f) {
  PeftLora a;
  a.rank = rank, a.alpha = alpha, a.targets = std::move(targets), a.base_model = "base.bin";
  std::map<std::string, Shape> w;
  for (const auto& s : model_tensor_specs(c)) w[s.name] = s.shape;
  Rng rng(7);
  for (int l = 0; l < c.n_layers; ++l)
    for (const auto& t : a.targets) {
      const std::string stem = projection_stem(l, projection_index(t));
      const Shape& ws = w.at(stem + ".weight");
      a.adapters[stem + ".lora_a"] = random_tensor({rank, ws[1]}, rng);
      a.adapters[stem + ".lora_b"] = random_tensor({ws[0], rank}, rng);
    }
  return a;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape == b.shape && std::memcmp(a.ptr(), b.ptr(), size_t(a.numel()) * 4) == 0;
}

nlohmann::json read_json(const std::string& p) { return nlohmann::json::parse(std::ifstream(p)); }
void write_text(const std::string& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

const std::vector<std::string> kAll = {"q", "k", "v", "o", "gate", "up", "down"};

TEST(PeftAdapter, RoundTripIsBitExact) {
  const LlamaConfig c = tiny_config();
  const std::string dir = test::scratch_dir() + "/peft";
  const PeftLora a = random_adapter(c, kAll);
  write_peft_adapter(dir + "//", a, c);  // "out/": the temp folder is still a sibling
  EXPECT_EQ(test::files_in(dir), (std::vector<std::string>{"adapter_config.json", "adapter_model.safetensors"}));
  for (const std::string& path : {dir, dir + "/", dir + "/adapter_config.json"}) {
    const PeftLora b = read_peft_adapter(path, c);
    EXPECT_EQ(b.rank, a.rank);
    EXPECT_EQ(b.alpha, a.alpha);
    EXPECT_FALSE(b.rslora);
    EXPECT_EQ(b.targets, a.targets);
    EXPECT_EQ(b.base_model, "base.bin");
    ASSERT_EQ(b.adapters.size(), a.adapters.size());
    for (const auto& [name, t] : a.adapters) EXPECT_TRUE(same_bits(b.adapters.at(name), t)) << name;
  }
}

TEST(PeftAdapter, FileHasPeftNamesShapesConfigAndHfRowOrderOfQkB) {
  const LlamaConfig c = tiny_config();
  const std::string dir = test::scratch_dir() + "/peft";
  const PeftLora a = random_adapter(c, {"k", "q", "down"});
  write_peft_adapter(dir, a, c);

  const nlohmann::json j = read_json(dir + "/adapter_config.json");
  EXPECT_EQ(j["peft_type"], "LORA");
  EXPECT_EQ(j["task_type"], "CAUSAL_LM");
  EXPECT_EQ(j["r"], 3);
  EXPECT_EQ(j["lora_alpha"].get<double>(), 6.5);
  EXPECT_EQ(j["target_modules"], nlohmann::json({"k_proj", "q_proj", "down_proj"}));  // as given
  EXPECT_EQ(j["bias"], "none");
  EXPECT_EQ(j["use_rslora"], false);
  EXPECT_EQ(j["fan_in_fan_out"], false);
  EXPECT_EQ(j["inference_mode"], true);
  EXPECT_EQ(j["lora_dropout"], 0.0);
  EXPECT_EQ(j["base_model_name_or_path"], "base.bin");

  SafetensorsFile f(dir + "/adapter_model.safetensors");
  EXPECT_EQ(f.tensors().size(), size_t(2 * 3 * 2));
  const int64_t hd = c.head_dim();
  for (int l = 0; l < c.n_layers; ++l)
    for (const auto& [target, module] : {std::pair{"q", "self_attn.q_proj"}, {"k", "self_attn.k_proj"},
                                         {"down", "mlp.down_proj"}}) {
      const std::string stem = projection_stem(l, projection_index(target));
      const std::string base = fmt::format("base_model.model.model.layers.{}.{}.", l, module);
      const SafetensorsTensor* ta = f.find(base + "lora_A.weight");
      const SafetensorsTensor* tb = f.find(base + "lora_B.weight");
      ASSERT_TRUE(ta && tb) << base;
      EXPECT_EQ(ta->dtype, SafetensorsDtype::F32);
      EXPECT_TRUE(same_bits(f.to_float(ta->name), a.adapters.at(stem + ".lora_a"))) << "lora_A is never permuted";
      const Tensor& B = a.adapters.at(stem + ".lora_b");
      const Tensor fb = f.to_float(tb->name);
      ASSERT_EQ(fb.shape, B.shape);
      const bool qk = std::string(target) != "down";
      // HF row r holds Meta row hf_row_source(r): written by hand here, not with meta_to_hf_rows
      for (int64_t r = 0; r < B.rows(); ++r) {
        const int64_t h = r / hd, c2 = (r % hd) / (hd / 2), i = r % (hd / 2);
        const int64_t src = qk ? h * hd + 2 * i + c2 : r;
        EXPECT_EQ(std::memcmp(fb.ptr() + r * B.cols(), B.ptr() + src * B.cols(), size_t(B.cols()) * 4), 0)
            << tb->name << " row " << r;
      }
    }
}

TEST(PeftAdapter, ReplacesTheTwoFilesOfAnExistingFolderAndKeepsTheRest) {
  const LlamaConfig c = tiny_config();
  const std::string dir = test::scratch_dir() + "/peft";
  write_peft_adapter(dir, random_adapter(c, {"v"}), c);
  write_text(dir + "/README.md", "mine\n");
  const PeftLora b = random_adapter(c, {"o"}, 2, 4.0f);
  write_peft_adapter(dir, b, c);
  EXPECT_EQ(test::files_in(dir),
            (std::vector<std::string>{"README.md", "adapter_config.json", "adapter_model.safetensors"}));
  EXPECT_EQ(read_peft_adapter(dir, c).targets, std::vector<std::string>{"o"});
  EXPECT_EQ(read_json(dir + "/adapter_config.json")["lora_alpha"], 4);  // integral: written as an integer
}

TEST(PeftAdapter, FailedWriteLeavesNoFolder) {
  const LlamaConfig c = tiny_config();
  const std::string root = test::scratch_dir();
  PeftLora a = random_adapter(c, {"q"});
  a.adapters.erase("blk.1.attn_q.lora_b");
  const std::string e = error_of([&] { write_peft_adapter(root + "/peft", a, c); });
  EXPECT_NE(e.find("base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight is missing"), std::string::npos)
      << e;
  a = random_adapter(c, {"q"});
  a.adapters["blk.0.attn_q.lora_a"] = Tensor({3, 15});
  EXPECT_NE(error_of([&] { write_peft_adapter(root + "/peft", a, c); }).find("has shape [3, 15], the base model "
                                                                           "needs [3, 16]"), std::string::npos);
  write_text(root + "/file", "x");
  EXPECT_NE(error_of([&] { write_peft_adapter(root + "/file", random_adapter(c, {"q"}), c); })
                .find("it exists and is a regular file, not a directory"),
            std::string::npos);
  EXPECT_EQ(test::files_in(root), std::vector<std::string>{"file"}) << "no half folder, no temp folder";
}

TEST(PeftAdapter, AcceptsAllLinearSuffixNamesF16AndConvertsRsLora) {
  const LlamaConfig c = tiny_config();
  const std::string dir = test::scratch_dir() + "/peft";
  write_peft_adapter(dir, random_adapter(c, kAll, 4, 8.0f), c);
  nlohmann::json j = read_json(dir + "/adapter_config.json");
  j["target_modules"] = "all-linear";
  j["use_rslora"] = true;
  j["lora_dropout"] = 0.1;  // training only: ignored
  write_text(dir + "/adapter_config.json", j.dump());
  PeftLora b = read_peft_adapter(dir, c);
  EXPECT_EQ(b.targets, kAll);
  EXPECT_TRUE(b.rslora);
  EXPECT_EQ(b.alpha, 16.0f) << "lora_alpha/sqrt(r) = (lora_alpha*sqrt(r))/r: 8*2";

  j["use_rslora"] = false;
  j["target_modules"] = {"self_attn.q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "q_proj"};
  write_text(dir + "/adapter_config.json", j.dump());
  EXPECT_EQ(read_peft_adapter(dir, c).targets, kAll);

  // the same tensors as F16 (what PEFT saves for a half-precision model) read as float
  const std::string half = test::scratch_dir() + "/half";
  const PeftLora a = random_adapter(c, {"up"});
  write_peft_adapter(half, a, c);
  SafetensorsFile f(half + "/adapter_model.safetensors");
  std::vector<Tensor> keep;
  std::vector<SafetensorsEntry> e;
  for (const auto& t : f.tensors()) {
    keep.push_back(f.to_float(t.name));
    e.push_back({t.name, t.shape, keep.back().ptr(), SafetensorsDtype::F16});
  }
  write_safetensors(half + "/adapter_model.safetensors", e);
  const PeftLora h = read_peft_adapter(half, c);
  const Tensor& A = a.adapters.at("blk.0.ffn_up.lora_a");
  EXPECT_EQ(h.adapters.at("blk.0.ffn_up.lora_a").ptr()[5], fp16_to_fp32(fp32_to_fp16(A.ptr()[5])));
}

// One bad config field at a time → one error naming adapter_config.json.
TEST(PeftAdapter, RefusesConfigOptionsQtuneCannotApply) {
  const LlamaConfig c = tiny_config();
  const std::string dir = test::scratch_dir() + "/peft", cfg = dir + "/adapter_config.json";
  write_peft_adapter(dir, random_adapter(c, {"q", "v"}), c);
  const nlohmann::json good = read_json(cfg);
  const std::vector<std::pair<std::function<void(nlohmann::json&)>, std::string>> cases = {
      {[](auto& j) { j["use_dora"] = true; }, "use_dora is true"},
      {[](auto& j) { j["rank_pattern"] = {{"q_proj", 8}}; }, "rank_pattern is not empty"},
      {[](auto& j) { j["alpha_pattern"] = {{"q_proj", 8}}; }, "alpha_pattern is not empty"},
      {[](auto& j) { j["bias"] = "lora_only"; }, "bias is \"lora_only\""},
      {[](auto& j) { j["modules_to_save"] = {"lm_head"}; }, "modules_to_save is [\"lm_head\"]"},
      {[](auto& j) { j["fan_in_fan_out"] = true; }, "fan_in_fan_out is true"},
      {[](auto& j) { j["lora_bias"] = true; }, "lora_bias is true"},
      {[](auto& j) { j["layers_to_transform"] = {0}; }, "layers_to_transform is set"},
      {[](auto& j) { j["use_dora"] = "yes"; }, "use_dora is \"yes\", not true or false"},
      {[](auto& j) { j["peft_type"] = "IA3"; }, "peft_type is \"IA3\": qtune reads LoRA adapters only"},
      {[](auto& j) { j.erase("peft_type"); }, "peft_type is missing"},
      {[](auto& j) { j["r"] = 0; }, "r is 0, not a rank"},
      {[](auto& j) { j["r"] = 2.5; }, "r is 2.5, not a rank"},
      {[](auto& j) { j["lora_alpha"] = -1; }, "lora_alpha is -1, not a number > 0"},
      {[](auto& j) { j["target_modules"] = ".*proj"; }, "target_modules is the pattern \".*proj\""},
      {[](auto& j) { j["target_modules"] = {"q_proj", "lm_head"}; }, "'lm_head' is not a LLaMA projection"},
      {[](auto& j) { j["target_modules"] = nlohmann::json::array(); }, "target_modules must be a non-empty list"},
      {[](auto& j) { j["r"] = 4; }, "has shape [3, 16], the base model needs [4, 16] (r = 4)"},
      {[](auto& j) { j["target_modules"] = {"q_proj"}; }, "adapts v_proj, which is not in target_modules"},
      {[](auto& j) { j["target_modules"] = {"q_proj", "v_proj", "o_proj"}; }, "lora_A.weight is missing"},
  };
  for (const auto& [edit, needle] : cases) {
    nlohmann::json j = good;
    edit(j);
    write_text(cfg, j.dump());
    const std::string e = error_of([&] { read_peft_adapter(dir, c); });
    EXPECT_NE(e.find(needle), std::string::npos) << "wanted: " << needle << "\ngot: " << e;
    EXPECT_NE(e.find("peft/adapter_"), std::string::npos) << e;
  }
  write_text(cfg, "{\"r\": 3,");
  EXPECT_NE(error_of([&] { read_peft_adapter(dir, c); }).find("adapter_config.json: not valid JSON"), std::string::npos);
  write_text(cfg, "{\"peft_type\": \"LO\xff\"}");
  EXPECT_NE(error_of([&] { read_peft_adapter(dir, c); }).find("adapter_config.json: not valid JSON"), std::string::npos);
}

TEST(PeftAdapter, RefusesBadTensorsAndMissingFiles) {
  const LlamaConfig c = tiny_config();
  const std::string dir = test::scratch_dir() + "/peft", st = dir + "/adapter_model.safetensors";
  write_peft_adapter(dir, random_adapter(c, {"q"}), c);
  SafetensorsFile f(st);
  std::vector<Tensor> keep;
  std::vector<SafetensorsEntry> all;
  for (const auto& t : f.tensors()) {
    keep.push_back(f.to_float(t.name));
    all.push_back({t.name, t.shape, keep.back().ptr()});
  }
  const std::string q0 = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight";
  auto rewrite = [&](std::vector<SafetensorsEntry> e) { write_safetensors(st, e); };
  auto err = [&] { return error_of([&] { read_peft_adapter(dir, c); }); };

  rewrite({all.begin() + 1, all.end()});
  EXPECT_NE(err().find("adapter_model.safetensors: tensor base_model.model.model.layers.0.self_attn.q_proj.lora_A."
                       "weight is missing"), std::string::npos) << err();
  std::vector<SafetensorsEntry> extra = all;
  Tensor e1({3, 16});
  extra.push_back({"base_model.model.lm_head.lora_A.weight", {3, 16}, e1.ptr()});
  rewrite(extra);
  EXPECT_NE(err().find("tensor 'base_model.model.lm_head.lora_A.weight' is not the lora_A or lora_B of a LLaMA "
                       "projection"), std::string::npos) << err();
  extra = all;
  extra.push_back({"base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight", {3, 16}, e1.ptr()});
  rewrite(extra);
  EXPECT_NE(err().find("the base model has 2 layers"), std::string::npos) << err();
  extra = all;
  for (auto& e : extra)
    if (e.name == q0) e.shape = {8, 6};  // same count, wrong shape
  rewrite(extra);
  EXPECT_NE(err().find(q0 + " has shape [8, 6], the base model needs [16, 3]"), std::string::npos) << err();
  extra = all;
  Tensor nan({16, 3});
  nan.ptr()[4] = std::nanf("");
  for (auto& e : extra)
    if (e.name == q0) e.data = nan.ptr();
  rewrite(extra);
  EXPECT_NE(err().find("adapter_model.safetensors: tensor '" + q0 + "': element [1, 1] is nan"), std::string::npos)
      << err();

  std::remove(st.c_str());
  EXPECT_NE(err().find("adapter_model.safetensors: no such file"), std::string::npos) << err();
  write_text(dir + "/adapter_model.bin", "pickle");
  EXPECT_NE(err().find("peft: the adapter is adapter_model.bin (a PyTorch pickle)"), std::string::npos) << err();
  EXPECT_NE(error_of([&] { read_peft_adapter(dir + "/nothing", c); }).find("nothing: no such file"),
            std::string::npos);
}

}  // namespace
}  // namespace qtune
