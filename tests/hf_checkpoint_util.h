// tests/hf_checkpoint_util.h — writes a ModelFile (qtune names, adjacent-pair RoPE rows) as a
// Hugging Face LLaMA checkpoint folder, the way transformers' convert_llama_weights_to_hf.py
// does: HF names, q_proj / k_proj rows permuted to rotate-half order (meta_to_hf_rows),
// config.json, and the weights in model.safetensors or in shards with an index.
#pragma once
#include <fmt/format.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/file.h"
#include "io/ggml_blocks.h"
#include "io/hf_layout.h"
#include "io/model_file.h"
#include "io/safetensors.h"

namespace qtune::test {

struct HfWriteOptions {
  SafetensorsDtype dtype = SafetensorsDtype::F32;
  int shards = 1;                   // > 1: model-0000i-of-0000N.safetensors + the index
  bool lm_head_when_tied = false;   // some saves keep lm_head.weight next to a tied embedding
  nlohmann::json config_extra = nlohmann::json::object();  // merged over the config written
};

inline nlohmann::json hf_config(const LlamaConfig& c) {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"hidden_size", c.dim},
          {"intermediate_size", c.hidden_dim},
          {"num_hidden_layers", c.n_layers},
          {"num_attention_heads", c.n_heads},
          {"num_key_value_heads", c.n_kv_heads},
          {"vocab_size", c.vocab_size},
          {"max_position_embeddings", c.seq_len},
          {"rms_norm_eps", c.norm_eps},
          {"rope_theta", c.rope_theta},
          {"tie_word_embeddings", c.tied_classifier},
          {"hidden_act", "silu"},
          {"rope_scaling", nullptr},
          {"torch_dtype", "float32"}};
}

// The HF form of every float tensor of m (which must hold them in `tensors`), by HF name.
inline std::map<std::string, Tensor> hf_tensors(const ModelFile& m, bool lm_head_when_tied = false) {
  std::map<std::string, Tensor> out;
  for (const auto& [name, t] : m.tensors) {
    Tensor w = t;
    if (name.ends_with(".attn_q.weight") || name.ends_with(".attn_k.weight"))
      meta_to_hf_rows(t.ptr(), w.ptr(), t.shape[0], t.shape[1], m.config.head_dim());
    out[hf_name_of_gguf(name)] = std::move(w);
  }
  if (lm_head_when_tied && m.config.tied_classifier) out["lm_head.weight"] = m.tensors.at("token_embd.weight");
  return out;
}

inline void write_hf_checkpoint(const ModelFile& m, const std::string& dir, const HfWriteOptions& o = {}) {
  nlohmann::json cfg = hf_config(m.config);
  cfg.merge_patch(o.config_extra);
  write_text_file_atomic(dir + "/config.json", cfg.dump(2));
  const std::map<std::string, Tensor> t = hf_tensors(m, o.lm_head_when_tied);
  std::vector<std::vector<SafetensorsEntry>> shards(size_t(std::max(o.shards, 1)));
  size_t i = 0;
  for (const auto& [name, w] : t) shards[i++ * shards.size() / t.size()].push_back({name, w.shape, w.ptr(), o.dtype});
  if (shards.size() == 1) {
    write_safetensors(dir + "/model.safetensors", shards[0], {{"format", "pt"}});
    return;
  }
  nlohmann::json map = nlohmann::json::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string file = fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, shards.size());
    write_safetensors(dir + "/" + file, shards[s], {{"format", "pt"}});
    for (const SafetensorsEntry& e : shards[s]) map[e.name] = file;
  }
  write_text_file_atomic(dir + "/model.safetensors.index.json",
                         nlohmann::json{{"metadata", {{"total_size", 0}}}, {"weight_map", map}}.dump(2));
}

// m with every float tensor rounded to F16 or BF16 (what a checkpoint of that dtype holds).
inline ModelFile rounded_to(ModelFile m, SafetensorsDtype d) {
  for (auto& [name, t] : m.tensors)
    for (float& x : t.data)
      x = d == SafetensorsDtype::F16 ? fp16_to_fp32(fp32_to_fp16(x)) : bf16_to_fp32(fp32_to_bf16(x));
  return m;
}

}  // namespace qtune::test
