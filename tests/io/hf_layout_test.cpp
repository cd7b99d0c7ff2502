// Hugging Face names and the q/k row permutation of its converter.
#include "io/hf_layout.h"

#include <gtest/gtest.h>

#include <vector>

#include "io/projections.h"

namespace qtune {
namespace {

TEST(HfLayout, NamesMapBothWaysForEveryTensorOfALayer) {
  EXPECT_EQ(*gguf_name_of_hf("model.embed_tokens.weight"), "token_embd.weight");
  EXPECT_EQ(*gguf_name_of_hf("model.layers.12.self_attn.o_proj.weight"), "blk.12.attn_output.weight");
  EXPECT_EQ(*gguf_name_of_hf("model.layers.3.post_attention_layernorm.weight"), "blk.3.ffn_norm.weight");
  EXPECT_FALSE(gguf_name_of_hf("model.layers.0.self_attn.rotary_emb.inv_freq"));
  EXPECT_FALSE(gguf_name_of_hf("model.layers.01.mlp.up_proj.weight"));
  EXPECT_FALSE(gguf_name_of_hf("model.layers..mlp.up_proj.weight"));
  for (const char* g : {"token_embd.weight", "output_norm.weight", "output.weight", "blk.7.attn_norm.weight",
                        "blk.7.ffn_norm.weight"})
    EXPECT_EQ(*gguf_name_of_hf(hf_name_of_gguf(g)), g);
  for (int i = 0; i < kNumProjections; ++i) {
    const std::string g = projection_stem(5, i) + ".weight";
    EXPECT_EQ(*gguf_name_of_hf(hf_name_of_gguf(g)), g);
    EXPECT_EQ(hf_projection_slot(hf_projection_short(i)), i);
  }
  EXPECT_EQ(std::string(hf_projection_short(4)), "gate_proj");
  EXPECT_EQ(hf_projection_slot("lm_head"), -1);
}

// The converter's permute(): w.view(n_heads, hd/2, 2, cols).transpose(1, 2).reshape(rows, cols),
// written out as index arithmetic independently of hf_row_source.
TEST(HfLayout, PermutationIsTheConvertersViewTransposeAndInvertsExactly) {
  const int64_t heads = 3, hd = 8, rows = heads * hd, cols = 5;
  std::vector<float> meta(size_t(rows * cols)), hf(meta.size()), back(meta.size());
  for (size_t i = 0; i < meta.size(); ++i) meta[i] = float(i);
  meta_to_hf_rows(meta.data(), hf.data(), rows, cols, hd);
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t c = 0; c < 2; ++c)
      for (int64_t i = 0; i < hd / 2; ++i)
        for (int64_t k = 0; k < cols; ++k)
          // viewed [h][i][c][k] → transposed [h][c][i][k]
          EXPECT_EQ(hf[size_t(((h * 2 + c) * (hd / 2) + i) * cols + k)], meta[size_t(((h * (hd / 2) + i) * 2 + c) * cols + k)]);
  hf_to_meta_rows(hf.data(), back.data(), rows, cols, hd);
  EXPECT_EQ(back, meta);
}

}  // namespace
}  // namespace qtune
