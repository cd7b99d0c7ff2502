// models/llama.h — a LLaMA-family transformer with explicit forward and backward (llm.c style).
//
// RMSNorm → attention (RoPE on adjacent pairs, grouped-query, causal) → residual
// → RMSNorm → SwiGLU FFN → residual; final RMSNorm; classifier tied to token_embd or separate.
// Every projection (q, k, v, o, gate, up, down) is a Linear slot filled by the method
// (adapters/linear.h); the model never branches on the method name. Embedding, norms and the
// classifier are plain float tensors, trainable only for method "full".
//
// Memory: parameters not in slots live in one Buffer; activations for a (B, T) shape are one
// Buffer, re-carved only when the shape changes.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "adapters/linear.h"
#include "core/buffer.h"
#include "io/model_file.h"

namespace qtune {

struct SamplerOptions {
  float temperature = 0.0f;  // 0 = greedy
  float top_p = 1.0f;
  uint64_t seed = 42;
};

// What a model holds, by purpose, in bytes — summed from the allocations themselves (buffer
// sizes, not formulas), for the finetune report's `memory` object.
struct MemoryBreakdown {
  int64_t weights = 0;            // the base as held (float, b-bit, GSE forms) + its gradients when trained
  int64_t adapters = 0;           // adapter tensors, their gradients and exact gradient sums
  int64_t saved_activations = 0;  // what forward keeps for backward (float, or GSE + per-token floats)
  int64_t logits = 0;             // the [N, V] tensors (logits, softmax, gradient) or the chunk of them held
  int64_t workspace = 0;          // per-layer gradients, the one-layer working set (--save-act gse, --recompute),
                                  // GSE operands, slot scratch
};

class Llama {
 public:
  // Builds slots with make_linear(opts, ...) from mf's tensors; the float copies of weights
  // that went into quantized slots are not kept. `seed` initialises adapters.
  Llama(const ModelFile& mf, const MethodOptions& opts, uint64_t seed);
  // The same, taking the file's weights: each is released once its slot is built (mf is left
  // without tensors), so loading peaks at about one copy of the model, not two.
  Llama(ModelFile&& mf, const MethodOptions& opts, uint64_t seed);
  ~Llama();
  Llama(const Llama&) = delete;
  Llama& operator=(const Llama&) = delete;

  const LlamaConfig& config() const { return cfg_; }
  const MethodOptions& method() const { return opts_; }

  // tokens, targets: [B, T] (T ≤ seq_len); targets < 0 are not counted. Returns the mean
  // cross-entropy over counted targets (0 when targets == nullptr: logits only).
  // will_backward: backward() of this forward follows (training). The float path then computes
  // the classifier's gradients already here, chunk by chunk while its logits are at hand, and
  // ACCUMULATES the classifier weight's gradient (method full) now: zero_grad before forward.
  // Without it, backward recomputes the logits (same result, one more classifier GEMM).
  // loss_count > 0: the mean is over that many targets instead of this batch's own (an MPI
  // rank's shard of a global batch: train/trainer.cpp), in the loss returned and in the gradient.
  float forward(const int* tokens, const int* targets, int B, int T, bool will_backward = false,
                int64_t loss_count = 0);
  // [B, T, vocab] of the last forward, which must have been without targets: a forward with
  // targets runs the classifier and the loss a chunk of rows at a time and keeps no [N, V]
  // (--gemm gse keeps it either way; --save-act gse never).
  const float* logits() const;
  // Backward of the last forward (which must have had targets); accumulates into grads.
  void backward();
  // Rows per chunk of the float path's fused classifier + cross-entropy (default 256; results
  // equal up to float rounding for any value: tests compare chunkings).
  void set_loss_chunk(int64_t rows);
  // The micro-batch about to be trained, counted over the whole run from 0: with the seed, the
  // key of stochastic GSE rounding (Context; --gemm gse:...,round=stochastic).
  void set_step(uint64_t micro_batch);
  void zero_grad();

  std::vector<Param<float>> trainable();
  // Persistent non-trained state of the slots (activation ranges, frozen quantizer ranges):
  // saved in checkpoints and adapter files with the trainable params.
  std::vector<Param<float>> state();
  // The slots' counters summed by name (e.g. IntLoRA's "zero_weights" and "weights").
  std::map<std::string, double> stats() const;
  int64_t num_params() const;     // all parameters of the model (base + adapters)
  int64_t num_trainable() const;
  int64_t weight_bytes() const;   // memory of all weights as held (quantized slots count packed)
  int64_t adapter_bytes() const;  // the adapters' part of it (Linear::adapter_bytes)
  MemoryBreakdown memory() const;  // at the moment of the call (activations: the last forward's shape)

  // Single-token inference with a KV cache (positions 0, 1, 2, ...). Returns logits [vocab].
  // A model loaded frozen from a block-quantized file decodes with int8 activations per block
  // of 32 (kernels/qdot_blocks.h), projections and classifier alike.
  void reset_cache();
  const float* step(int token, int pos);
  // The prompt tokens[n] at positions 0..n−1 in one batched forward (float activations, GEMMs
  // over n rows), its keys and values written to the cache; returns the logits [vocab] of the
  // last position. Continue with step(token, n).
  const float* prefill(const int* tokens, int n);

  // Weights after merging every slot, e.g. for `qtune merge` and export: float weights in
  // `tensors`, integer ones (integer methods, frozen quantized slots) in `quantized`; the
  // activation setting in act_bits / act_scales. `inexact` (optional): elements the integer
  // merges had to round (0 for the exact methods).
  ModelFile merged(int64_t* inexact = nullptr) const;
  // Trainable adapter tensors by name ("blk.0.attn_q.lora_a" [r, in], "...lora_b" [out, r]).
  TensorMap adapter_tensors();

  Linear<float>& slot(int layer, const std::string& target);  // target: q k v o gate up down

 private:
  void build(const ModelFile& mf, uint64_t seed, ModelFile* release);
  static std::unique_ptr<Linear<float>> make_slot(const ModelFile& mf, const std::string& name,
                                                  const MethodOptions& opts, Rng& rng);

  struct Impl;
  std::unique_ptr<Impl> impl_;
  LlamaConfig cfg_;
  MethodOptions opts_;
};

// Wall times of one generate(): the prompt's prefill, and the decode steps after it.
struct GenerateStats {
  int prompt_tokens = 0;
  double prompt_seconds = 0;
  int gen_tokens = 0;      // tokens returned
  int decode_steps = 0;    // step() calls (gen_tokens − 1 unless it hit seq_len or EOS first)
  double decode_seconds = 0;
};

// Generates up to max_tokens after `prompt` (which should start with BOS): prefill, then one
// step per token; stops at EOS (EOS is included in the output) or at seq_len. Returns only the
// new ids; `stats` (optional) receives the timings.
std::vector<int> generate(Llama& model, const std::vector<int>& prompt, int max_tokens, const SamplerOptions& s,
                          GenerateStats* stats = nullptr);

}  // namespace qtune
