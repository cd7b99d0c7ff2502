// Golden test of the DiT against PyTorch: tests/data/dit_tiny_ref.bin is written by
// tools/torch_reference_dit.py (an independent float64 DiT in Debian's PyTorch) from the weights
// qtune wrote, tests/data/dit_tiny.gguf (how to regenerate both: the top of that script). The
// float32 C++ model must match the prediction within 1e-4 relative, the loss within 1e-5 and
// every gradient — each tensor's and the input's — within 1e-3.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "models/dit.h"
#include "models/tiny_dit.h"
#include "ref_dump.h"
#include "test_util.h"

using namespace qtune;

TEST(DitGolden, PredictionLossAndEveryGradientMatchPyTorch) {
  const std::string model_path = test::test_data("dit_tiny.gguf");
  if (const char* out = std::getenv("QTUNE_WRITE_DIT_GOLDEN")) {  // regeneration (torch_reference_dit.py)
    save_dit(out, test::golden_dit());
    std::printf("wrote %s\n", out);
  }
  const test::RefDump ref(test::test_data("dit_tiny_ref.bin"));
  DitFile f = load_dit(model_path);
  MethodOptions o;
  o.method = "full";
  Dit<float> m(f, o, 1);
  const DitConfig& c = m.config();

  const int B = int(ref.at("t").data.size());
  std::vector<float> x(ref.at("x_t").data.begin(), ref.at("x_t").data.end());
  std::vector<float> eps(ref.at("eps").data.begin(), ref.at("eps").data.end());
  std::vector<int> t = ref.ints("t"), y = ref.ints("y");
  ASSERT_EQ(x.size(), size_t(B) * c.image_numel());
  EXPECT_EQ(y.back(), c.null_class()) << "the batch must include the null class";

  const double loss = m.forward(x.data(), t.data(), y.data(), eps.data(), B);
  const double perr = test::rel_err(m.prediction(), ref.at("pred").data.data(), x.size());
  const double ref_loss = ref.scalar("loss");
  std::printf("prediction rel err %.3g, loss %.8f vs %.8f\n", perr, loss, ref_loss);
  EXPECT_LT(perr, 1e-4);
  EXPECT_NEAR(loss, ref_loss, 1e-5 * ref_loss) << "relative 1e-5";

  m.zero_grad();
  m.backward();
  int checked = 0;
  double worst = 0;
  std::string worst_name;
  auto compare = [&](const std::string& name, const float* g, int64_t n) {
    const test::RefArray& r = ref.at("grad." + name);
    ASSERT_EQ(r.data.size(), size_t(n)) << name;
    ++checked;
    if (name.ends_with("attn_k.bias")) {
      // softmax ignores q·b_k (the same for every key of a query): the true gradient is 0, and
      // both sides hold only rounding; compare them to the scale of the q bias gradient instead
      double gmax = 0, rmax = 0;
      for (int64_t i = 0; i < n; ++i) gmax = std::max(gmax, std::fabs(double(g[i]))), rmax = std::max(rmax, std::fabs(r.data[i]));
      EXPECT_LT(gmax, 1e-6) << name;
      EXPECT_LT(rmax, 1e-12) << name;
      return;
    }
    const double e = test::rel_err(g, r.data.data(), size_t(n));
    EXPECT_LT(e, 1e-3) << name;
    if (e > worst) worst = e, worst_name = name;
  };
  for (auto& p : m.trainable()) compare(p.name, p.grad, p.numel);
  compare("input", m.input_grad(), int64_t(x.size()));
  std::printf("%d gradients vs PyTorch: worst relative error %.3g (%s)\n", checked, worst, worst_name.c_str());
  int in_dump = 0;
  for (const auto& [name, a] : ref.arrays()) in_dump += name.rfind("grad.", 0) == 0;
  EXPECT_EQ(checked, in_dump) << "every gradient in the dump must be compared";
  EXPECT_EQ(checked, int(f.tensors.size()) + 1) << "every tensor of the file, and the input";
}
