// io/gguf_model.h — LLaMA models in GGUF (general.architecture = "llama"), llama.cpp naming.
//
// Config keys read (prefix "llama."): context_length, embedding_length, block_count,
// feed_forward_length, attention.head_count, attention.head_count_kv (default head_count),
// attention.layer_norm_rms_epsilon, rope.freq_base (default 10000). vocab_size is the length of
// tokenizer.ggml.tokens when present, else llama.vocab_size, else token_embd.weight's rows.
// The seven projections of each block stored as Q8_0 / Q4_0 / Q4_1 / I8 / I16 / I32 load into
// ModelFile::quantized exactly (layouts and keys: io/gguf_int.h); every other tensor loads as float
// (dequantized); a Q8_0 / Q4_0 / Q4_1 classifier also keeps its block form exactly
// (ModelFile::classifier_blocks, for decoding). Stored types other than F32 go to
// ModelFile::stored_types. Activation settings:
//   qtune.act.bits           u32   ModelFile::act_bits (written when nonzero or act_scales is non-empty)
//   qtune.act.scale.<stem>   f32   ModelFile::act_scales[stem], stem = "blk.N.attn_q" ...
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "io/ggml_blocks.h"
#include "io/gguf_int.h"
#include "io/gguf_tokenizer.h"
#include "io/model_file.h"

namespace qtune {

class GgufFile;

ModelFile load_gguf_model(const std::string& path);
ModelFile load_gguf_model(const GgufFile& file);
// As load_gguf_model, but float tensors stay on disk (ModelFile::lazy: model_file.h).
ModelFile open_gguf_model(const std::string& path);

struct GgufSaveOptions {
  // 2-D float weights: F32, F16, Q8_0, Q4_0 or Q4_1; norms stay F32. Integer weights
  // (ModelFile::quantized) are always written exactly in their own layout (io/gguf_int.h).
  GgmlType weight_type = GgmlType::F32;
  std::string name = "qtune";            // general.name
  const GgufVocab* vocab = nullptr;      // embedded as tokenizer.ggml.* when given
};

struct GgufSaveReport {
  // 2-D float weights whose row length is not a multiple of the block size, written as F32 instead.
  std::vector<std::string> f32_fallback;
  // One entry per integer weight, in file order: type used, why not a block type, fp16 errors.
  std::vector<GgufIntReport> int_weights;
  // Whether llama.cpp can load and run the file; else the reasons (integer layouts, .scale
  // tensors, no vocabulary), one per line.
  bool llamacpp_loadable = true;
  std::vector<std::string> llamacpp_reasons;
};

// Validates m (validate_model), then writes it atomically.
GgufSaveReport save_model_gguf(const ModelFile& m, const std::string& path, const GgufSaveOptions& o);

// Writes an F32 LLaMA GGUF (the keys save_model_gguf writes, o.weight_type ignored) without
// holding the model in memory: `order` is every tensor of model_tensor_specs(c) in the order
// they are written, and fill(i, dst, n) gives the next n values of order[i], called in order
// and in pieces of at most a few MiB. Atomic: an error (from fill too) leaves nothing at path.
void write_model_gguf_stream(const LlamaConfig& c, const std::string& path, const GgufSaveOptions& o,
                             const std::vector<TensorSpec>& order,
                             const std::function<void(size_t i, float* dst, int64_t n)>& fill);

}  // namespace qtune
