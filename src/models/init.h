// models/init.h — new models: parsing a config spec and random initialisation (pretraining).
#pragma once
#include <cstdint>
#include <string>

#include "io/model_file.h"

namespace qtune {

// "dim=128,hidden=344,layers=4,heads=4,kv_heads=4,seq=256" → LlamaConfig (vocab_size left 0:
// it comes from the tokenizer). Unknown keys, missing keys and inconsistent values (dim not a
// multiple of heads, heads not a multiple of kv_heads, odd head_dim) throw Error naming the key.
LlamaConfig parse_config_spec(const std::string& spec);

// A model with GPT-2 / llama2.c style initialisation: every weight N(0, 0.02), the two
// projections that write into the residual stream (attn_output, ffn_down) N(0, 0.02/√(2L)) so
// the residual's variance does not grow with depth, RMSNorm gains 1, classifier tied.
ModelFile random_model(const LlamaConfig& cfg, uint64_t seed);

}  // namespace qtune
