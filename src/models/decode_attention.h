// models/decode_attention.h — decoding's attention: one query position over a layer's KV cache.
#pragma once
#include <cstdint>

#include "models/llama.h"

namespace qtune {

// Writes n positions' keys or values rows[t, KV] (row stride ld), positions pos..pos+n−1, into one
// layer's head-major cache [n_kv_heads, seq_len, head_dim].
void store_kv(const LlamaConfig& c, const float* rows, int64_t ld, int64_t n, int64_t pos, float* cache);

// One query position attending over cached keys/values 0..pos of one layer.
// q, attn_y: [nh, hd]   key, value: [nkv, seq_len, hd]   att: [nh, seq_len] scratch
void decode_attention(const LlamaConfig& c, const float* q, const float* key, const float* value, float* att,
                      float* attn_y, int pos);

}  // namespace qtune
