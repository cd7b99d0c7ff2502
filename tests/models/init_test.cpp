#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "models/init.h"
#include "models/llama.h"

using namespace qtune;

TEST(Init, ParsesSpecAndRejectsBadOnes) {
  LlamaConfig c = parse_config_spec("dim=64,hidden=172,layers=2,heads=8,kv_heads=4,seq=128");
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hidden_dim, 172);
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.seq_len, 128);
  EXPECT_EQ(parse_config_spec("dim=64,hidden=172,layers=2,heads=8,seq=128").n_kv_heads, 8);
  for (const char* bad : {"dim=64", "dim=64,hidden=1,layers=1,heads=3,seq=8", "dim=64,hidden=1,layers=1,heads=8,kv_heads=3,seq=8",
                          "dim=64,hidden=x,layers=1,heads=8,seq=8", "dim=64,foo=1,hidden=1,layers=1,heads=8,seq=8",
                          "dim=64,hidden=1,layers=1,heads=8,seq=-4", "dim=32,hidden=4,layers=1,heads=32,seq=8"})
    EXPECT_THROW(parse_config_spec(bad), Error) << bad;
}

TEST(Init, RandomModelHasInitialLossNearLogVocab) {
  LlamaConfig c = parse_config_spec("dim=32,hidden=64,layers=2,heads=4,kv_heads=2,seq=16");
  c.vocab_size = 100;
  ModelFile mf = random_model(c, 3);
  // residual projections get the smaller std
  const Tensor& wo = mf.tensors.at("blk.0.attn_output.weight");
  const Tensor& wq = mf.tensors.at("blk.0.attn_q.weight");
  auto sd = [](const Tensor& t) {
    double s = 0;
    for (float v : t.data) s += double(v) * v;
    return std::sqrt(s / t.numel());
  };
  EXPECT_NEAR(sd(wq), 0.02, 0.003);
  EXPECT_NEAR(sd(wo), 0.01, 0.002);
  MethodOptions full;
  full.method = "full";
  Llama model(mf, full, 1);
  int tokens[16], targets[16];
  for (int i = 0; i < 16; ++i) tokens[i] = (i * 7) % 100, targets[i] = (i * 7 + 7) % 100;
  float loss = model.forward(tokens, targets, 1, 16);
  EXPECT_NEAR(loss, std::log(100.0), 0.1);  // a fresh model predicts ~uniformly
  // deterministic from the seed
  EXPECT_EQ(random_model(c, 3).tensors.at("token_embd.weight").data[5], mf.tensors.at("token_embd.weight").data[5]);
  EXPECT_NE(random_model(c, 4).tensors.at("token_embd.weight").data[5], mf.tensors.at("token_embd.weight").data[5]);
}

TEST(Init, FrozenModelHasNothingTrainableAndSameLogits) {
  LlamaConfig c = parse_config_spec("dim=32,hidden=64,layers=2,heads=4,kv_heads=2,seq=16");
  c.vocab_size = 50;
  ModelFile mf = random_model(c, 9);
  MethodOptions full;
  full.method = "full";
  MethodOptions frozen = full;
  frozen.frozen = true;
  Llama a(mf, full, 1), b(mf, frozen, 1);
  EXPECT_GT(a.num_trainable(), 0);
  EXPECT_EQ(b.num_trainable(), 0);
  EXPECT_TRUE(b.trainable().empty());
  int tokens[8] = {1, 5, 9, 2, 7, 3, 3, 40};
  a.forward(tokens, nullptr, 1, 8);
  b.forward(tokens, nullptr, 1, 8);
  for (int i = 0; i < 8 * 50; ++i) ASSERT_EQ(a.logits()[i], b.logits()[i]);
}
