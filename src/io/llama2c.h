// io/llama2c.h — llama2.c float32 checkpoints (karpathy/llama2.c export.py).
//
// v0 (legacy): 7×int32 header {dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
//   seq_len}; vocab_size < 0 means the classifier is stored separately (untied). Then tok_emb,
//   rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3 (each for all layers), rms_final, the RoPE
//   tables freq_cis_real/imag ([seq_len, head_dim/2] each, skipped), then wcls if untied.
// v1: uint32 magic 0x616b3432 ("ak42"), int32 version 1, the same 7 ints (vocab positive),
//   uint8 shared_classifier, zero padding to 256 bytes; then rms_att, rms_ffn (all layers),
//   rms_final, tok_emb, wq, wk, wv, wo, w1, w2, w3, then wcls if not shared.
// Tensors are mapped to the GGUF names of io/model_file.h (w1→ffn_gate, w2→ffn_down, w3→ffn_up).
#pragma once
#include <cstdint>
#include <string>

#include "io/model_file.h"

namespace qtune {

constexpr uint32_t kLlama2cMagic = 0x616b3432;  // "ak42" as a little-endian uint32

// Loads a v0 or v1 file (decided by the magic). The header is validated and the file size is
// checked against the exact byte count of the layout before any tensor is allocated.
ModelFile load_llama2c(const std::string& path);
// As load_llama2c, but the tensors stay on disk (ModelFile::lazy: model_file.h).
ModelFile open_llama2c(const std::string& path);

// Writes m as a llama2.c v1 file (atomically). m must pass validate_model().
void save_llama2c_v1(const ModelFile& m, const std::string& path);

// Throws Error (prefixed with `where`) unless the config is usable: positive sizes within sane
// bounds, dim % n_heads == 0, n_heads % n_kv_heads == 0, even head_dim.
void check_llama_config(const LlamaConfig& c, const std::string& where);

}  // namespace qtune
