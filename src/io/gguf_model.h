// io/gguf_model.h — LLaMA models in GGUF (general.architecture = "llama"), llama.cpp naming.
//
// Config keys read (prefix "llama."): context_length, embedding_length, block_count,
// feed_forward_length, attention.head_count, attention.head_count_kv (default head_count),
// attention.layer_norm_rms_epsilon, rope.freq_base (default 10000). vocab_size is the length of
// tokenizer.ggml.tokens when present, else llama.vocab_size, else token_embd.weight's rows.
// Tensors (io/model_file.h names) are dequantized to float; their stored types go to
// ModelFile::stored_types.
#pragma once
#include <string>
#include <vector>

#include "io/ggml_blocks.h"
#include "io/gguf_tokenizer.h"
#include "io/model_file.h"

namespace qtune {

class GgufFile;

ModelFile load_gguf_model(const std::string& path);
ModelFile load_gguf_model(const GgufFile& file);

struct GgufSaveOptions {
  GgmlType weight_type = GgmlType::F32;  // 2-D weights: F32, F16, Q8_0, Q4_0 or Q4_1; norms stay F32
  std::string name = "qtune";            // general.name
  const GgufVocab* vocab = nullptr;      // embedded as tokenizer.ggml.* when given
};

struct GgufSaveReport {
  // 2-D weights whose row length is not a multiple of the block size, written as F32 instead.
  std::vector<std::string> f32_fallback;
};

// Validates m (validate_model), then writes it atomically.
GgufSaveReport save_model_gguf(const ModelFile& m, const std::string& path, const GgufSaveOptions& o);

}  // namespace qtune
