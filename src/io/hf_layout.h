// io/hf_layout.h — how Hugging Face's LLaMA checkpoints (transformers' LlamaForCausalLM, and the
// PEFT adapters made on them) name and lay out the tensors qtune names the GGUF way.
//
// Names: model.embed_tokens.weight ↔ token_embd.weight, model.norm.weight ↔ output_norm.weight,
// lm_head.weight ↔ output.weight, and per layer N, model.layers.N.<module>.weight ↔
// blk.N.<stem>.weight with input_layernorm ↔ attn_norm, post_attention_layernorm ↔ ffn_norm and
// the projections self_attn.{q,k,v,o}_proj, mlp.{gate,up,down}_proj ↔ the io/projections.h table.
//
// RoPE layout: qtune (like llama2.c, Meta's checkpoints and GGUF "llama") rotates adjacent pairs
// (x[2i], x[2i+1]) of each head; transformers rotates halves (x[i], x[i + head_dim/2]). Its
// converter therefore permutes the rows of q_proj and k_proj within each head:
//   HF row  h·hd + c·hd/2 + i   =   Meta row  h·hd + 2i + c        (c ∈ {0, 1}, i < hd/2)
// so that the same weights give the same model. Reading an HF checkpoint undoes that permutation
// (hf_to_meta_rows) on attn_q and attn_k (head_dim = dim / n_heads for both; k has n_kv_heads
// heads); writing for HF (a PEFT adapter's lora_B of q/k, whose rows are output rows) applies it.
// Inputs (columns) are never permuted, so lora_A and o_proj are unchanged.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace qtune {

// "self_attn.q_proj", ..., "mlp.down_proj" for projection slot i (io/projections.h order).
const char* hf_projection_module(int slot);
// "q_proj", ..., "down_proj": PEFT's target_modules names.
const char* hf_projection_short(int slot);
// Slot of a PEFT target module name ("q_proj" → 0), or -1.
int hf_projection_slot(const std::string& short_name);

// The GGUF-style name of an HF tensor name, or nullopt when it is not one qtune knows
// (e.g. model.layers.0.self_attn.rotary_emb.inv_freq, which is derived, not learned).
std::optional<std::string> gguf_name_of_hf(const std::string& hf_name);
// The HF name of a GGUF-style name; throws Error for a name without one.
std::string hf_name_of_gguf(const std::string& gguf_name);

// Row r of the HF layout holds Meta row hf_row_source(r, head_dim) (the formula above).
int64_t hf_row_source(int64_t r, int64_t head_dim);
// dst[rows, cols] = src with its rows moved between the layouts; rows % head_dim == 0,
// head_dim even, src != dst.
void meta_to_hf_rows(const float* src, float* dst, int64_t rows, int64_t cols, int64_t head_dim);
void hf_to_meta_rows(const float* src, float* dst, int64_t rows, int64_t cols, int64_t head_dim);

}  // namespace qtune
