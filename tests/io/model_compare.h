// tests/io/model_compare.h — two ModelFiles hold the same model: config and every float tensor,
// bit for bit (the same weights read from two formats or layouts).
#pragma once
#include <gtest/gtest.h>

#include <cstring>

#include "io/model_file.h"

namespace qtune::test {

inline void expect_same_model(const ModelFile& got, const ModelFile& want) {
  EXPECT_EQ(got.config.dim, want.config.dim);
  EXPECT_EQ(got.config.hidden_dim, want.config.hidden_dim);
  EXPECT_EQ(got.config.n_layers, want.config.n_layers);
  EXPECT_EQ(got.config.n_heads, want.config.n_heads);
  EXPECT_EQ(got.config.n_kv_heads, want.config.n_kv_heads);
  EXPECT_EQ(got.config.vocab_size, want.config.vocab_size);
  EXPECT_EQ(got.config.seq_len, want.config.seq_len);
  EXPECT_EQ(got.config.norm_eps, want.config.norm_eps);
  EXPECT_EQ(got.config.rope_theta, want.config.rope_theta);
  EXPECT_EQ(got.config.tied_classifier, want.config.tied_classifier);
  ASSERT_EQ(got.tensors.size(), want.tensors.size());
  for (const auto& [name, t] : want.tensors) {
    ASSERT_TRUE(got.tensors.count(name)) << name;
    const Tensor& g = got.tensors.at(name);
    ASSERT_EQ(g.shape, t.shape) << name;
    EXPECT_EQ(std::memcmp(g.ptr(), t.ptr(), size_t(t.numel()) * sizeof(float)), 0) << name;
  }
}

}  // namespace qtune::test
