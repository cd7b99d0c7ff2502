// tests/models/stream_build_test.cpp — a Llama built from a streamed file (open_model: each
// float weight read as its slot is built) is the Llama built from the loaded file, for training
// (qlora: the base quantized at slot build) and for inference; and the file keeps nothing.
#include <cmath>
#include <cstring>
#include <vector>

#include "io/model_file.h"
#include "models/init.h"
#include "models/llama.h"
#include "test_util.h"

using namespace qtune;

namespace {

std::string model_path() { return test::shared_dir() + "/models/stories260K/stories260K.bin"; }

MethodOptions qlora() {
  MethodOptions o;
  o.method = "qlora";
  o.bits = 4;
  o.rank = 4;
  o.targets = {"q", "k", "v", "o"};
  return o;
}

std::vector<float> logits_of(Llama& m) {
  const std::vector<int> seq = {1, 403, 407, 261, 378, 432, 383, 286};
  m.forward(seq.data(), nullptr, 1, int(seq.size()));
  return std::vector<float>(m.logits(), m.logits() + seq.size() * size_t(m.config().vocab_size));
}

}  // namespace

TEST(StreamBuild, QloraFromStreamedFileEqualsLoaded) {
  QT_REQUIRE_SHARED(model_path());
  ModelFile streamed = open_model(model_path());
  ASSERT_FALSE(streamed.lazy.empty());
  Llama a(load_model(model_path()), qlora(), 7);
  Llama b(std::move(streamed), qlora(), 7);
  // Llama(ModelFile&&) empties the file as it builds (it is not moved from)
  EXPECT_TRUE(streamed.lazy.empty() && streamed.tensors.empty() && !streamed.source);
  EXPECT_EQ(logits_of(a), logits_of(b));
  const ModelFile ma = a.merged(), mb = b.merged();
  for (const auto& [name, t] : ma.tensors)
    EXPECT_EQ(std::memcmp(t.ptr(), mb.tensors.at(name).ptr(), size_t(t.numel()) * sizeof(float)), 0) << name;
}

TEST(StreamBuild, FrozenFromStreamedFileEqualsLoaded) {
  QT_REQUIRE_SHARED(model_path());
  MethodOptions frozen;
  frozen.frozen = true;
  const ModelFile streamed = open_model(model_path());
  Llama a(load_model(model_path()), frozen, 1);
  Llama b(streamed, frozen, 1);  // const: read, not released
  EXPECT_EQ(logits_of(a), logits_of(b));
  EXPECT_EQ(streamed.lazy.size(), size_t(2 + 9 * streamed.config.n_layers));
}

// random_model keeps the rule it had before it was built from RandomInit (one Rng, drawn in the
// order embedding, then per block q, k, v, o, gate, up, down; norms 1): written out here as the
// independent reference.
TEST(StreamBuild, RandomModelDrawOrder) {
  LlamaConfig c;
  c.dim = 16, c.hidden_dim = 24, c.n_layers = 2, c.n_heads = 2, c.n_kv_heads = 1, c.vocab_size = 10, c.seq_len = 8;
  const ModelFile m = random_model(c, 5);
  Rng rng(5);
  const float sw = 0.02f, sr = 0.02f / std::sqrt(2.0f * c.n_layers);
  auto expect = [&](const std::string& name, float sd) {
    const Tensor& t = m.tensors.at(name);
    for (int64_t i = 0; i < t.numel(); ++i)
      ASSERT_EQ(t.data[size_t(i)], sd == 0 ? 1.0f : static_cast<float>(rng.normal() * sd)) << name << " " << i;
  };
  expect("token_embd.weight", sw);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    expect(b + "attn_norm.weight", 0);
    for (const char* w : {"attn_q", "attn_k", "attn_v"}) expect(b + w + ".weight", sw);
    expect(b + "attn_output.weight", sr);
    expect(b + "ffn_norm.weight", 0);
    expect(b + "ffn_gate.weight", sw);
    expect(b + "ffn_up.weight", sw);
    expect(b + "ffn_down.weight", sr);
  }
  expect("output_norm.weight", 0);
  EXPECT_EQ(m.tensors.size(), size_t(2 + 9 * c.n_layers));
}
