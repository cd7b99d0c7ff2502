// models/init.h — new models: parsing a config spec and random initialisation (pretraining).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"
#include "io/model_file.h"

namespace qtune {

// "dim=128,hidden=344,layers=4,heads=4,kv_heads=4,seq=256" → LlamaConfig (vocab_size left 0:
// it comes from the tokenizer). Unknown keys, missing keys and inconsistent values (dim not a
// multiple of heads, heads not a multiple of kv_heads, odd head_dim) throw Error naming the key
// and `flag` (the option the spec came from).
LlamaConfig parse_config_spec(const std::string& spec, const std::string& flag = "--init-config");

// A model with GPT-2 / llama2.c style initialisation: every weight N(0, 0.02), the two
// projections that write into the residual stream (attn_output, ffn_down) N(0, 0.02/√(2L)) so
// the residual's variance does not grow with depth, RMSNorm gains 1, classifier tied.
ModelFile random_model(const LlamaConfig& cfg, uint64_t seed);

// random_model's values one piece at a time, so a model bigger than memory can be written
// (qtune init): tensors() lists them in the order they are drawn from the one Rng(seed), and
// fill() hands out the next values of tensor i (pieces in order, tensors in order). Drawing
// every tensor this way gives exactly random_model(cfg, seed), which is built from it.
class RandomInit {
 public:
  RandomInit(const LlamaConfig& cfg, uint64_t seed);
  const std::vector<TensorSpec>& tensors() const { return order_; }
  void fill(size_t i, float* dst, int64_t n);

 private:
  std::vector<TensorSpec> order_;
  std::vector<float> std_;  // per tensor; 0 = a RMSNorm gain, all ones (draws nothing)
  Rng rng_;
  size_t cur_ = 0;
  int64_t done_ = 0;  // values of tensor cur_ handed out
};

}  // namespace qtune
