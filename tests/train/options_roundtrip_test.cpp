// Every method option (adapters/method_options.h), set away from its default, survives the adapter
// file and the training checkpoint: what `merge` and `--resume` rebuild is what was trained.
#include <gtest/gtest.h>

#include <type_traits>

#include "adapters/method_options.h"
#include "core/error.h"
#include "io/adapter_file.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace qtune {
namespace {

// A value of the option's type that is valid and not the default.
template <class T>
T other_value(const T& def, const OptionInfo& info) {
  if constexpr (std::is_same_v<T, bool>) {
    return !def;
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    return {info.choices.back()};
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (std::string(info.name) == "gemm") return "gse:b=6,g=16,e=8,rule=mx,round=stochastic";  // a spec, not a choice
    for (const auto& c : info.choices)
      if (c != def && c != "full") return c;  // "full" has no adapter file
    return def + "x";
  } else if constexpr (std::is_same_v<T, int>) {
    if (!info.named.empty()) return info.named[0].second;  // --rank full: the word must round-trip
    for (const auto& c : info.choices)
      if (c != std::to_string(def)) return std::stoi(c);
    return def + 1;
  } else {
    return def * 2 + 0.25f;  // not a round number: the text form must round-trip exactly
  }
}

// The first method `info` applies to (for --method itself: a non-default one).
std::string method_for(const OptionInfo& info) {
  for (const auto& m : methods())
    if (applies(info.applies, m) && m.adapter && std::string(m.name) != "lora") return m.name;
  return "lora";
}

// One MethodOptions per option, that option set to a non-default value.
std::vector<std::pair<std::string, MethodOptions>> one_changed_option_each() {
  std::vector<std::pair<std::string, MethodOptions>> out;
  const MethodOptions defaults;
  defaults.for_each([&](const auto& def, const OptionInfo& info) {
    MethodOptions o;
    o.method = method_for(info);
    o.for_each([&](auto& field, const OptionInfo& i) {
      if constexpr (std::is_same_v<std::decay_t<decltype(field)>, std::decay_t<decltype(def)>>)
        if (std::string(i.name) == info.name) field = other_value(def, info);
    });
    if (o.gemm_attention) o.gemm = "gse";  // --gemm-attention needs GSE GEMMs
    ASSERT_FALSE(o == defaults) << info.name;
    validate(o);
    out.emplace_back(info.name, o);
  });
  return out;
}

TensorMap some_adapter() {
  TensorMap t;
  t.emplace("blk.0.attn_q.lora_a", Tensor({2, 4}));
  t.emplace("blk.0.attn_q.lora_b", Tensor({4, 2}));
  return t;
}

TEST(MethodOptionsRoundTrip, EveryOptionSurvivesTheAdapterFile) {
  const std::string dir = test::scratch_dir();
  const auto cases = one_changed_option_each();
  ASSERT_GE(cases.size(), 15u);
  for (const auto& [name, o] : cases) {
    const std::string path = dir + "/" + name + ".gguf";
    RunSettings run = settings_of(o);
    run.emplace_back("seed", "7");
    if (method_info(o.method).lora_scale)
      write_lora_adapter(path, some_adapter(), {}, run, o.alpha);
    else
      write_qtune_adapter(path, some_adapter(), {}, run);
    const AdapterFile a = read_adapter(path);
    EXPECT_TRUE(options_from_settings(a.run, path) == o) << "--" << name;
  }
}

TEST(MethodOptionsRoundTrip, EveryOptionSurvivesTheCheckpointAndAChangeIsRefused) {
  const std::string dir = test::scratch_dir();
  std::vector<float> a(8), ga(8);
  std::vector<Param<float>> params = {{"blk.0.attn_q.lora_a", a.data(), ga.data(), 8, {2, 4}}};
  AdamW opt(params, AdamWOptions{});
  for (const auto& [name, o] : one_changed_option_each()) {
    const std::string path = dir + "/" + name + ".ckpt.gguf";
    TrainOptions t;
    t.method = o;
    save_checkpoint(path, params, opt, TrainState{}, run_keys(t));
    EXPECT_TRUE(options_from_settings(read_adapter(path).run, path) == o) << "--" << name;
    TrainState st;
    EXPECT_NO_THROW(load_checkpoint(path, params, opt, st, run_keys(t))) << "--" << name;
    // Resuming with that option back at its default is refused, naming the option.
    TrainOptions back;
    back.method.method = name == "method" ? "lora" : o.method;
    if (name == "gemm-attention") back.method.gemm = o.gemm;  // only the option itself differs
    try {
      load_checkpoint(path, params, opt, st, run_keys(back));
      ADD_FAILURE() << "--" << name << ": a resume with the default value was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--" + name), std::string::npos) << e.what();
    }
  }
}

TEST(MethodOptionsRoundTrip, AMissingSettingIsAnErrorNotADefault) {
  MethodOptions o;
  o.method = "intlora-mul";
  RunSettings run = settings_of(o);
  std::erase_if(run, [](const auto& kv) { return kv.first == "vmc"; });
  try {
    options_from_settings(run, "a.gguf");
    ADD_FAILURE() << "a missing vmc was filled in with its default";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'vmc'"), std::string::npos) << e.what();
  }
}

// Options added after files existed (OptionInfo::predates): a file without the key was made
// before the option, i.e. with the value it predates; every other option stays required.
TEST(MethodOptionsRoundTrip, AFileOlderThanAnOptionReadsAsItsPredatesValue) {
  MethodOptions o;
  o.method = "qlora";
  RunSettings run = settings_of(o);
  const size_t n = run.size();
  std::erase_if(run, [](const auto& kv) { return kv.first == "gemm" || kv.first == "save-act" ||
                                                  kv.first == "gemm-attention"; });
  ASSERT_EQ(run.size(), n - 3);
  EXPECT_TRUE(options_from_settings(run, "old.gguf") == o);
  std::erase_if(run, [](const auto& kv) { return kv.first == "bits"; });
  EXPECT_NE(test::error_of([&] { options_from_settings(run, "old.gguf"); }).find("'bits'"), std::string::npos);
}

}  // namespace
}  // namespace qtune
