// io/hf_model.h — Hugging Face LLaMA checkpoints (transformers' LlamaForCausalLM as saved by
// save_pretrained): a folder holding
//   config.json                       the architecture (parse_hf_config below)
//   model.safetensors                 the weights (io/safetensors.h), or
//   model.safetensors.index.json      {"weight_map": {"<tensor>": "<shard file>", ...}} and the
//   model-00001-of-0000N.safetensors  shards it lists, in the same folder
//   tokenizer.model                   optional: the SentencePiece tokenizer (hf_tokenizer_path)
// F32, F16 and BF16 tensors are read; names map to qtune's by io/hf_layout.h, and attn_q /
// attn_k are moved back from HF's rotate-half row order as they are read (LazyTensor::hf_head_dim),
// so the result is the same ModelFile the llama2.c or GGUF form of those weights gives.
// Derived tensors (model.layers.N.self_attn.rotary_emb.inv_freq, which old transformers saved)
// are skipped; any other tensor qtune does not know (a bias, a vision tower) is refused, since
// dropping it would silently change the model. With tie_word_embeddings, lm_head.weight is
// ignored when present (transformers ties it to the embedding).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "io/model_file.h"

namespace qtune {

// The checkpoint folder `path` names: the folder itself, its config.json, or a .safetensors (or
// index) file of a folder that has a config.json. nullopt when path is none of those (a
// llama2.c or GGUF file, or a path that does not exist).
std::optional<std::string> hf_checkpoint_dir(const std::string& path);

// config.json's text → a LlamaConfig (checked by check_llama_config). Throws Error "<where>: ..."
// for invalid JSON, a model that is not llama (model_type / architectures), a missing or mistyped
// field, and the features qtune's LLaMA lacks: rope_scaling, a head_dim other than
// hidden_size / num_attention_heads, attention_bias or mlp_bias, a hidden_act other than silu.
// Defaults as transformers' LlamaConfig: num_key_value_heads = num_attention_heads,
// rms_norm_eps 1e-6, rope_theta 10000, tie_word_embeddings false.
LlamaConfig parse_hf_config(const std::string& json_text, const std::string& where);

// The files a checkpoint's model is read from: config.json, the index when there is one, then
// the weight files in order. Throws Error naming the folder or index when they are not there.
std::vector<std::string> hf_checkpoint_files(const std::string& dir);

// dir/tokenizer.model when the folder of the checkpoint `model_path` has one, else "" (also
// when model_path is not a checkpoint).
std::string hf_tokenizer_path(const std::string& model_path);

// Opens the checkpoint in folder `dir`: every header read and checked (names, dtypes, shapes
// against config.json, each tensor in exactly one shard), float tensors left on disk
// (ModelFile::lazy, one LazySource over the shards). format "hf-safetensors".
ModelFile open_hf_model(const std::string& dir);

}  // namespace qtune
