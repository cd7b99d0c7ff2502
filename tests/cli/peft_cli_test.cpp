// Hugging Face PEFT adapters through the binary: `export-lora --format peft` then
// `finetune --init-adapter ... --steps 0` gives the adapter back bit for bit (lora, qlora); an
// adapter made by an independent PyTorch script (tools/peft_reference.py, committed under
// tests/data/peft_stories260K) imported, merged and run gives PyTorch's logits of the base with
// PEFT's W + (lora_alpha/r)·B·A applied in Hugging Face's layout; and every refusal is one line.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>
#include <algorithm>

#include "cli_util.h"
#include "io/adapter_file.h"
#include "io/model_file.h"
#include "io/safetensors.h"
#include "models/llama.h"
#include "ref_dump.h"

using namespace qtune;
using namespace qtune::test;

namespace {

std::set<std::string> targets_of(const AdapterFile& a) {
  std::set<std::string> out;
  if (const std::string* t = find_setting(a.run, "target"))
    for (size_t i = 0; i <= t->size();) {
      const size_t j = std::min(t->find(',', i), t->size());
      out.insert(t->substr(i, j - i));
      i = j + 1;
    }
  return out;
}

// The adapter tensors of two qtune adapter files are the same, bit for bit, and so are the
// settings that define the branch (rank, alpha, targets).
void expect_same_adapter(const std::string& a_path, const std::string& b_path) {
  const AdapterFile a = read_adapter(a_path), b = read_adapter(b_path);
  ASSERT_EQ(a.adapters.size(), b.adapters.size());
  for (const auto& [name, t] : a.adapters) {
    auto it = b.adapters.find(name);
    ASSERT_NE(it, b.adapters.end()) << name;
    ASSERT_EQ(it->second.shape, t.shape) << name;
    EXPECT_EQ(std::memcmp(it->second.ptr(), t.ptr(), size_t(t.numel()) * 4), 0) << name << " differs";
  }
  EXPECT_EQ(a.lora_alpha, b.lora_alpha);
  for (const char* k : {"method", "rank", "alpha", "bits"})
    if (find_setting(a.run, k)) EXPECT_EQ(*find_setting(a.run, k), *find_setting(b.run, k)) << k;
  EXPECT_EQ(targets_of(a), targets_of(b));  // the same set; the new run lists them in slot order
}

// args with the value after `flag` replaced.
std::vector<std::string> setting(std::vector<std::string> args, const std::string& flag, const std::string& value) {
  auto it = std::find(args.begin(), args.end(), flag);
  EXPECT_NE(it, args.end()) << flag;
  if (it != args.end()) *(it + 1) = value;
  return args;
}

std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& extra) {
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// finetune args without --rank (the init adapter's is used) for `steps` steps.
std::vector<std::string> init_run(const Corpus& c, const std::string& method, const std::string& init,
                                  const std::string& out, int steps = 0) {
  std::vector<std::string> a = finetune(c, method, out, steps);
  a.resize(a.size() - 2);  // "--rank", "4"
  return with(a, {"--init-adapter", init});
}

std::vector<std::string> export_peft(const std::string& adapter, const std::string& out) {
  return {"export-lora", "--format", "peft", "--adapter", adapter, "--model", stories_bin(), "--out", out};
}

// The logits of the merged model on the dump's tokens, vs PyTorch's: relative L2 error and max |Δ|.
std::pair<double, double> logits_error(const std::string& merged, const RefDump& ref) {
  const RefArray& tk = ref.at("tokens");
  const int B = int(tk.shape[0]), T = int(tk.shape[1]);
  std::vector<int> tokens(ref.ints("tokens"));
  MethodOptions o;
  o.method = "full";
  Llama model(load_model(merged), o, 1);
  model.forward(tokens.data(), nullptr, B, T);
  const RefArray& lg = ref.at("logits");
  EXPECT_EQ(lg.data.size(), size_t(B) * T * model.config().vocab_size);
  double max_abs = 0;
  for (size_t i = 0; i < lg.data.size(); ++i) max_abs = std::max(max_abs, std::fabs(model.logits()[i] - lg.data[i]));
  return {rel_err(model.logits(), lg.data.data(), lg.data.size()), max_abs};
}

void round_trip(const std::string& method, const std::vector<std::string>& extra) {
  auto c = corpus();
  const std::string a = c.dir + "/a.gguf", peft = c.dir + "/peft", b = c.dir + "/b.gguf";
  auto r = run_qtune(with(finetune(c, method, a, 4), extra));
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_qtune(export_peft(a, peft));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(files_in(peft), (std::vector<std::string>{"adapter_config.json", "adapter_model.safetensors"}));
  const auto cfg = read_json(peft + "/adapter_config.json");
  EXPECT_EQ(cfg["r"], 4);
  EXPECT_EQ(cfg["base_model_name_or_path"], stories_bin());
  // back: --steps 0 writes the adapter it started from
  r = run_qtune(with(init_run(c, method, peft, b), extra));
  ASSERT_EQ(r.code, 0) << r.err;
  expect_same_adapter(a, b);
  // the adapter_config.json path works as the folder does, and a qtune adapter as well
  r = run_qtune(with(init_run(c, method, peft + "/adapter_config.json", c.dir + "/b2.gguf"), extra));
  ASSERT_EQ(r.code, 0) << r.err;
  expect_same_adapter(a, c.dir + "/b2.gguf");
  r = run_qtune(with(init_run(c, method, a, c.dir + "/b3.gguf"), extra));
  ASSERT_EQ(r.code, 0) << r.err;
  expect_same_adapter(a, c.dir + "/b3.gguf");
  // and training from it moves on from there: step 1's loss is the trained adapter's, not the base's
  r = run_qtune(with(init_run(c, method, peft, c.dir + "/more.gguf", 1), extra));
  ASSERT_EQ(r.code, 0) << r.err;
  const double first = read_json(a + ".json")["loss_curve"][0]["loss"];
  const double cont = read_json(c.dir + "/more.gguf.json")["loss_curve"][0]["loss"];
  EXPECT_LT(cont, first) << "--init-adapter did not start from the trained adapter";
}

}  // namespace

TEST(PeftCli, LoraExportThenInitAdapterIsBitExact) {
  QT_REQUIRE_STORIES();
  round_trip("lora", {});
}

TEST(PeftCli, QloraWithSomeTargetsExportThenInitAdapterIsBitExact) {
  QT_REQUIRE_STORIES();
  round_trip("qlora", {"--target", "k,q,o,up", "--alpha", "5.5"});
}

// tests/data/peft_stories260K and its logits are written by tools/peft_reference.py (see its top).
TEST(PeftCli, PeftAdapterMadeByPyTorchGivesPyTorchsLogits) {
  QT_REQUIRE_STORIES();
  auto c = corpus();
  const std::string fixture = test_data("peft_stories260K"), b = c.dir + "/b.gguf", merged = c.dir + "/m.gguf";
  auto r = run_qtune(init_run(c, "lora", fixture, b));
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_qtune({"merge", "-m", stories_bin(), "-t", tok512(), "--adapter", b, "--out", merged});
  ASSERT_EQ(r.code, 0) << r.err;
  const RefDump ref(test_data("peft_stories260K_ref.bin"));
  const auto [rel, max_abs] = logits_error(merged, ref);
  std::printf("merged logits vs PyTorch+PEFT formula: relative L2 error %.3g, max |diff| %.3g\n", rel, max_abs);
  EXPECT_LT(rel, 1e-5) << "relative L2 error of the logits";
  // The same without the q/k permutation would be a different model: the check can fail.
  const auto [base_rel, base_max] = logits_error(stories_bin(), ref);
  EXPECT_GT(base_rel, 1e-2) << "the adapter changes the logits";

  // exported again, the tensors are the fixture's, bit for bit (the q/k lora_B rows back in HF order)
  r = run_qtune(export_peft(b, c.dir + "/again"));
  ASSERT_EQ(r.code, 0) << r.err;
  SafetensorsFile want(fixture + "/adapter_model.safetensors"), got(c.dir + "/again/adapter_model.safetensors");
  ASSERT_EQ(got.tensors().size(), want.tensors().size());
  for (const auto& t : want.tensors()) {
    ASSERT_TRUE(got.find(t.name)) << t.name;
    const Tensor x = want.to_float(t.name), y = got.to_float(t.name);
    ASSERT_EQ(x.shape, y.shape) << t.name;
    EXPECT_EQ(std::memcmp(x.ptr(), y.ptr(), size_t(x.numel()) * 4), 0) << t.name;
  }
  const auto cfg = read_json(c.dir + "/again/adapter_config.json"), want_cfg = read_json(fixture + "/adapter_config.json");
  for (const char* k : {"r", "lora_alpha", "target_modules", "peft_type", "bias", "use_rslora"}) EXPECT_EQ(cfg[k], want_cfg[k]) << k;
}

// The same comparison on a freshly trained and exported adapter, when this machine has PyTorch
// (/usr/bin/python3 with torch): the reference then reads qtune's own export.
TEST(PeftCli, PyTorchAppliesAFreshExportAsQtuneMergesIt) {
  QT_REQUIRE_STORIES();
  if (std::system("/usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "no PyTorch for /usr/bin/python3";
  auto c = corpus();
  const std::string a = c.dir + "/a.gguf", peft = c.dir + "/peft", merged = c.dir + "/m.gguf", dump = c.dir + "/ref.bin";
  ASSERT_EQ(run_qtune(setting(finetune(c, "lora", a, 6), "--lr", "3e-2")).code, 0);
  ASSERT_EQ(run_qtune(export_peft(a, peft)).code, 0);
  ASSERT_EQ(run_qtune({"merge", "-m", stories_bin(), "-t", tok512(), "--adapter", a, "--out", merged}).code, 0);
  const std::string script = test_data("../../tools/peft_reference.py");
  const std::string cmd = "/usr/bin/python3 '" + script + "' --model '" + stories_bin() + "' --adapter '" + peft +
                          "' --out '" + dump + "' >'" + c.dir + "/py.log' 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << read_file(c.dir + "/py.log");
  const auto [rel, max_abs] = logits_error(merged, RefDump(dump));
  std::printf("fresh adapter: relative L2 error %.3g, max |diff| %.3g\n", rel, max_abs);
  EXPECT_LT(rel, 1e-5);
}

TEST(PeftCli, RefusalsAreOneLine) {
  QT_REQUIRE_STORIES();
  auto c = corpus();
  const std::string a = c.dir + "/a.gguf", peft = c.dir + "/peft";
  ASSERT_EQ(run_qtune(finetune(c, "lora", a, 1)).code, 0);
  ASSERT_EQ(run_qtune(export_peft(a, peft)).code, 0);

  // export
  EXPECT_TRUE(IsBadInput(run_qtune({"export-lora", "--format", "peft", "--adapter", a, "--out", c.dir + "/p2"}),
                         "--format peft needs --model"));
  EXPECT_TRUE(IsBadInput(run_qtune(export_peft(a, c.train)), "it is a regular file, not a directory"));
  EXPECT_TRUE(IsBadInput(run_qtune(export_peft(a, c.dir + "/no/such")), "directory '" + c.dir + "/no' does not exist"));
  EXPECT_TRUE(IsBadInput(run_qtune({"export-lora", "--format", "onnx", "--adapter", a, "--out", c.dir + "/p3"}),
                         "--format"));
  const std::string qa = c.dir + "/qa.gguf";
  ASSERT_EQ(run_qtune(with(finetune(c, "qalora", qa, 1), {"--bits", "4"})).code, 0);
  EXPECT_TRUE(IsBadInput(run_qtune(export_peft(qa, c.dir + "/p4")),
                         "a qalora adapter is not PEFT's LoRA (W + (lora_alpha/r)·B·A)"));
  const std::string full = c.dir + "/full.gguf";
  auto args = finetune(c, "lora", full, 1);
  args.back() = "full";  // --rank full: k/v get rank 32, the rest 64
  ASSERT_EQ(run_qtune(args).code, 0);
  EXPECT_TRUE(IsBadInput(run_qtune(export_peft(full, c.dir + "/p5")), "its ranks differ between modules (32 to 64"));
  EXPECT_FALSE(test::exists(c.dir + "/p4") || test::exists(c.dir + "/p5")) << "a refused export leaves no folder";

  // import
  EXPECT_TRUE(IsBadInput(run_qtune(with(init_run(c, "lora", peft, c.dir + "/x.gguf"), {"--rank", "8"})),
                         "--rank 8 conflicts with --init-adapter " + peft + " (rank 4): leave --rank out"));
  EXPECT_TRUE(IsBadInput(run_qtune(with(init_run(c, "lora", peft, c.dir + "/x.gguf"), {"--alpha", "3"})),
                         "--alpha 3 conflicts with --init-adapter"));
  EXPECT_TRUE(IsBadInput(run_qtune(with(init_run(c, "lora", peft, c.dir + "/x.gguf"), {"--target", "q,v"})),
                         "--target q,v conflicts with --init-adapter"));
  EXPECT_TRUE(IsBadInput(run_qtune(init_run(c, "loldu", peft, c.dir + "/x.gguf")),
                         "--init-adapter starts a lora or qlora run (an additive B·A), not --method loldu"));
  EXPECT_TRUE(IsBadInput(run_qtune(init_run(c, "lora", qa, c.dir + "/x.gguf")),
                         qa + ": a qalora adapter: --init-adapter takes lora and qlora adapters"));
  EXPECT_TRUE(IsBadInput(run_qtune(init_run(c, "lora", c.dir + "/nothing", c.dir + "/x.gguf")),
                         "--init-adapter " + c.dir + "/nothing: no such file"));
  EXPECT_TRUE(IsBadInput(run_qtune(init_run(c, "lora", c.dir, c.dir + "/x.gguf")),
                         "--init-adapter " + c.dir + "/adapter_config.json: no such file"));
  auto cfg = read_json(peft + "/adapter_config.json");
  cfg["use_dora"] = true;
  write_file(peft + "/adapter_config.json", cfg.dump());
  EXPECT_TRUE(IsBadInput(run_qtune(init_run(c, "lora", peft, c.dir + "/x.gguf")),
                         peft + "/adapter_config.json: use_dora is true"));
  EXPECT_FALSE(test::exists(c.dir + "/x.gguf"));
  // --steps 0 is finetune's only; a negative count stays refused
  EXPECT_TRUE(IsBadInput(run_qtune(with(finetune(c, "lora", c.dir + "/y.gguf", 1), {"--steps", "-1"})), "--steps"));
}
