// Golden test against PyTorch: tests/data/stories260K_ref.bin is written by
// tools/torch_reference.py (an independent float64 LLaMA on the same checkpoint; the format is
// documented at the top of that script). Checks logits, loss, every full-fine-tuning gradient
// and the LoRA loss and A/B gradients of the float32 C++ model.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <vector>

#include "core/file.h"
#include "io/model_file.h"
#include "models/llama.h"
#include "test_util.h"

using namespace qtune;

namespace {

struct RefArray {
  Shape shape;
  std::vector<float> data;
};

std::map<std::string, RefArray> read_ref(const std::string& path) {
  MappedFile f(path);
  Reader r(f);
  QT_CHECK(r.string(8, "magic") == "QTREF001", "{}: not a qtune reference dump", path);
  std::map<std::string, RefArray> out;
  const uint32_t count = r.get<uint32_t>("count");
  for (uint32_t i = 0; i < count; ++i) {
    std::string name = r.string(r.get<uint32_t>("name length"), "name");
    RefArray a;
    const uint32_t ndim = r.get<uint32_t>("ndim");
    for (uint32_t d = 0; d < ndim; ++d) a.shape.push_back(r.get<int64_t>("dim"));
    a.data.resize(numel(a.shape));
    std::memcpy(a.data.data(), r.bytes(a.data.size() * 4, "data"), a.data.size() * 4);
    out[name] = std::move(a);
  }
  QT_CHECK(r.left() == 0, "{}: {} trailing bytes", path, r.left());
  return out;
}

struct Golden : ::testing::Test {
  std::string model_path = test::shared_dir() + "/models/stories260K/stories260K.bin";
  std::map<std::string, RefArray> ref;
  std::vector<int> tokens, targets;
  int B = 0, T = 0;

  void SetUp() override {
    QT_REQUIRE_SHARED(model_path);
    ref = read_ref(test::test_data("stories260K_ref.bin"));
    const RefArray& tk = ref.at("tokens");
    B = int(tk.shape[0]);
    T = int(tk.shape[1]);
    for (float x : tk.data) tokens.push_back(int(x));
    for (float x : ref.at("targets").data) targets.push_back(int(x));
  }
  const RefArray& at(const std::string& name) {
    auto it = ref.find(name);
    if (it == ref.end()) throw Error("reference dump has no array " + name);
    return it->second;
  }
  // Every gradient in the dump under `prefix` is compared; returns how many were.
  int check_grads(Llama& model, const std::string& prefix, double tol) {
    int n = 0;
    double worst = 0;
    std::string worst_name;
    for (auto& prm : model.trainable()) {
      const RefArray& g = at(prefix + prm.name);
      EXPECT_EQ(g.data.size(), size_t(prm.numel)) << prm.name;
      if (g.data.size() != size_t(prm.numel)) continue;
      double e = test::rel_err(prm.grad, g.data.data(), g.data.size());
      EXPECT_LT(e, tol) << prm.name;
      if (e > worst) worst = e, worst_name = prm.name;
      ++n;
    }
    std::printf("%d gradients vs PyTorch: worst relative error %.3g (%s)\n", n, worst, worst_name.c_str());
    return n;
  }
};

}  // namespace

TEST_F(Golden, FullFineTuningLogitsLossAndAllGradients) {
  MethodOptions o;
  o.method = "full";
  Llama model(load_model(model_path), o, 1);
  model.forward(tokens.data(), nullptr, B, T);  // logits: a forward with targets keeps none
  const RefArray& lg = at("logits");
  ASSERT_EQ(lg.data.size(), size_t(B) * T * model.config().vocab_size);
  const double lerr = test::rel_err(model.logits(), lg.data.data(), lg.data.size());
  float loss = model.forward(tokens.data(), targets.data(), B, T);
  EXPECT_LT(lerr, 1e-4);
  const double ref_loss = at("loss").data[0];
  std::printf("logits rel err %.3g, loss %.7f vs %.7f\n", lerr, loss, ref_loss);
  EXPECT_NEAR(loss, ref_loss, 1e-5 * ref_loss) << "relative 1e-5";

  model.zero_grad();
  model.backward();
  int checked = check_grads(model, "grad.", 1e-3);
  int in_dump = 0;
  for (auto& [name, a] : ref) in_dump += name.rfind("grad.", 0) == 0;
  EXPECT_EQ(checked, in_dump) << "every parameter gradient in the dump must be a trainable of the model";

  // backward accumulates: a second backward doubles every gradient
  std::vector<float> once(model.trainable()[0].grad, model.trainable()[0].grad + model.trainable()[0].numel);
  model.backward();
  auto p0 = model.trainable()[0];
  for (auto& x : once) x *= 2;
  EXPECT_LT(test::rel_err(p0.grad, once.data(), once.size()), 1e-6);
}

TEST_F(Golden, LoraLossAndAdapterGradients) {
  MethodOptions o;
  o.method = "lora";
  o.rank = 4;
  o.alpha = 8.0f;
  Llama model(load_model(model_path), o, 1);
  auto params = model.trainable();
  ASSERT_EQ(params.size(), size_t(5 * 7 * 2)) << "A and B for 7 projections in 5 layers, nothing else";
  for (auto& prm : params) {  // the script's fixed nonzero A, B
    const RefArray& v = at("lora." + prm.name);
    ASSERT_EQ(v.data.size(), size_t(prm.numel)) << prm.name;
    std::memcpy(prm.value, v.data.data(), v.data.size() * sizeof(float));
  }
  float loss = model.forward(tokens.data(), targets.data(), B, T);
  const double ref_loss = at("lora.loss").data[0];
  std::printf("lora loss %.7f vs %.7f\n", loss, ref_loss);
  EXPECT_NEAR(loss, ref_loss, 1e-5 * ref_loss);
  model.zero_grad();
  model.backward();
  EXPECT_EQ(check_grads(model, "lora.grad.", 1e-3), 70);
}
