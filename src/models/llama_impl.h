// models/llama_impl.h — the private state of Llama, shared by its forward, backward and
// generation files (not part of the contract; include only from src/models/).
#pragma once
#include <array>
#include <memory>
#include <string>
#include <vector>

#include "adapters/gse_slot.h"
#include "adapters/linear.h"
#include "core/buffer.h"
#include "io/model_file.h"
#include "kernels/qblocks_packed.h"
#include "nn/ops.h"

namespace qtune {

// Pointers into the one Buffer of non-slot parameters (or into its twin of gradients).
// L = n_layers, V = vocab, C = dim.
struct BaseTensors {
  float* token_embd = nullptr;  // [V, C]
  float* attn_norm = nullptr;   // [L, C]
  float* ffn_norm = nullptr;    // [L, C]
  float* output_norm = nullptr; // [C]
  float* output = nullptr;      // [V, C]; == token_embd when the classifier is tied
};

struct LlamaLayer {
  // The projections; slot_ref(layer, i) walks them in the order of kProjections.
  std::unique_ptr<Linear<float>> q, k, v, o, gate, up, down;
};

// Saved activations of one forward at shape (B, T), N = B·T, carved from one Buffer.
// H = hidden, Q = n_heads·head_dim, KV = kv_dim. Under --save-act gse the per-layer tensors
// hold ONE layer (L = 1 below: the float working set of the layer being computed), res holds
// two rows (layer l reads row l % 2 and writes row (l + 1) % 2), probs is absent, and every
// layer's copy is GSE in Impl::saved (llama_saved.cpp). rstd1, rstd2, lse, xf, rstdf stay float.
// Under --recompute the per-layer tensors hold one layer too, but res keeps every block's input
// (L + 1 rows): backward re-runs forward_layer(l) from res[l] before backward_layer(l).
// logits and probs: see Impl::fused_ce — the float path holds a chunk of kCeRows rows of logits
// and no probs; --gemm gse holds [N, V] of both; --save-act gse a block of kLogitRows rows.
struct LlamaActs {
  float* res = nullptr;      // [L+1, N, C] residual stream: res[0] = embeddings, res[l+1] = layer l output
  float* res_mid = nullptr;  // [L, N, C] residual after the attention block
  float* xn1 = nullptr;      // [L, N, C] attn_norm output
  float* rstd1 = nullptr;    // [L, N]
  float* q = nullptr;        // [L, N, Q] after RoPE
  float* k = nullptr;        // [L, N, KV] after RoPE
  float* v = nullptr;        // [L, N, KV]
  float* lse = nullptr;      // [L, B, nh, T] attention's log-sum-exp per query row (nn/ops.h); else null
  float* att = nullptr;      // [L, B, nh, T, T] softmax probabilities: --gemm-attention (then lse is null)
  float* attn_y = nullptr;   // [L, N, Q] attention output (input of attn_output)
  float* xn2 = nullptr;      // [L, N, C] ffn_norm output
  float* rstd2 = nullptr;    // [L, N]
  float* h1 = nullptr;       // [L, N, H] gate projection
  float* h3 = nullptr;       // [L, N, H] up projection
  float* swi = nullptr;      // [L, N, H] silu(h1) ⊙ h3 (input of ffn_down)
  float* xf = nullptr;       // [N, C] output_norm output
  float* rstdf = nullptr;    // [N]
  float* logits = nullptr;   // [N, V], or a chunk / block of rows of it (see above)
  float* probs = nullptr;    // [N, V] softmax, saved for backward (--gemm gse only)
};

// Gradients w.r.t. activations, one layer at a time (reused across layers).
struct LlamaGrads {
  float* dres = nullptr;    // [N, C] gradient of the residual stream, walks down the layers
  float* dxn = nullptr;     // [N, C]
  float* dq = nullptr;      // [N, Q]
  float* dk = nullptr;      // [N, KV]
  float* dv = nullptr;      // [N, KV]
  float* dattn_y = nullptr; // [N, Q]
  float* dh1 = nullptr;     // [N, H]
  float* dh3 = nullptr;     // [N, H]
  float* dswi = nullptr;    // [N, H]
  float* dlogits = nullptr; // [N, V] (--gemm gse only; the other paths work a chunk at a time)
};

// Single-token decoding state.
struct LlamaCache {
  Buffer<float> mem;
  // Head-major (each head's positions contiguous): decoding's attention streams one head's keys
  // and values instead of 256 bytes out of every KV-wide row.
  float* key = nullptr;     // [L, n_kv_heads, seq_len, head_dim]
  float* value = nullptr;   // [L, n_kv_heads, seq_len, head_dim]
  float* k_new = nullptr;   // [KV] this token's key and value, before they go to the cache
  float* v_new = nullptr;
  float* x = nullptr;       // [C] residual stream
  float* xn = nullptr;      // [C]
  float* q = nullptr;       // [Q]
  float* att = nullptr;     // [nh, seq_len] scores, a row per head
  float* attn_y = nullptr;  // [Q]
  float* tmp = nullptr;     // [C]
  float* h1 = nullptr;      // [H]
  float* h3 = nullptr;      // [H]
  float* logits = nullptr;  // [V]
  float rstd = 0;
};

// One tensor backward reads, as --save-act gse stores it: [rows, cols] float in the working set.
struct SavedView {
  float* p;
  int64_t rows, cols;
};
constexpr int kSavedPerLayer = 12;
constexpr int64_t kLogitRows = 256;  // --save-act gse: rows of the classifier per block
// The float path's fused classifier + cross-entropy: rows per chunk (llama_loss.cpp). 256 rows of
// a 32000 vocabulary are 33 MB; fewer rows make the GEMMs narrower for no gain in speed.
constexpr int64_t kCeRows = 256;

struct Llama::Impl {
  LlamaConfig cfg;
  bool base_trainable = false;  // embedding / norms / untied classifier
  Buffer<float> params, grads;  // non-slot parameters and their gradients
  int64_t n_base = 0;           // elements of the non-slot parameters (params also holds padding)
  BaseTensors p, g;             // g is all-null when the base is frozen
  std::vector<LlamaLayer> layers;
  Context ctx;
  // --gemm gse (docs/METHODS.md §9): the classifier's arithmetic (the slots carry their own), its
  // frozen weight in both orientations (absent when the base trains: method full encodes it per
  // pass), and whether attention's products run in GSE too (--gemm-attention).
  std::optional<GseArith> gse;
  std::optional<GseWeight> output_gse;
  bool gse_attention = false;
  // --save-act gse: the activations backward needs, GSE-encoded per layer ([L][kSavedPerLayer],
  // llama_saved.cpp), and the softmax of the logits [N, V]; the classifier then runs a block of
  // kLogitRows rows at a time through a.logits [kLogitRows, V], so no [N, V] float is held.
  bool save_gse = false;
  std::vector<GseMatrix> saved;
  GseMatrix saved_probs;

  // --recompute: activations of one layer at a time (see LlamaActs); ws_layer = the layer whose
  // activations the working set holds now (-1: none), so backward re-runs only what it lacks.
  bool recompute = false;
  int ws_layer = -1;

  Buffer<float> act_mem, grad_mem;
  Buffer<float> full_logits;  // [N, V]: a float-path forward without targets (inference, logits())
  const float* last_logits = nullptr;  // what logits() returns; null: the last forward kept none
  // The float path's forward was told a backward follows and has already produced dxf (in d.dxn)
  // and the classifier's weight gradient (llama_loss.cpp).
  bool ce_ready = false;
  int64_t ce_rows = kCeRows;  // rows per chunk of it (Llama::set_loss_chunk)
  LlamaActs a;
  LlamaGrads d;
  int B = 0, T = 0;
  std::vector<int> tokens, targets;
  bool has_targets = false;
  // The targets the loss is averaged over (Llama::forward's loss_count); 0: this batch's own.
  int64_t loss_count = 0;
  // loss_count, or the batch's counted targets when it is 0.
  int64_t loss_denominator(const int* targets) const { return loss_count > 0 ? loss_count : nn::count_targets(targets, N()); }

  LlamaCache cache;
  // Decoding's classifier (Llama::step): the file's Q8_0 / Q4_0 / Q4_1 block form of p.output
  // when it has one and the model is frozen (kernels/qdot_blocks.h); else step uses p.output.
  // Q8_0 / Q4_0 are held repacked instead (output_packed, kernels/qblocks_packed.h).
  std::optional<QuantMatrix> output_blocks;
  std::optional<kernels::PackedBlocks> output_packed;

  void carve_acts(int B, int T);   // (re)allocates only when (B, T) changes
  void carve_grads();              // for the current (B, T), on first backward
  // Layer l from res_at(l) into the working set (li(l)) and res_at(l + 1).
  void forward_layer(int l);
  void backward_layer(int l);
  // The float path: not --gemm gse (whose classifier runs GSE operands over all N rows and keeps
  // [N, V] logits, softmax and gradient) and not --save-act gse (which keeps its softmax in GSE).
  bool fused_ce() const { return !gse && !save_gse; }
  // The fused classifier + mean cross-entropy over counted targets, kCeRows rows at a time; with
  // `grad`, also dxf into d.dxn (overwritten) and dW into g.output (accumulated). llama_loss.cpp.
  double classifier_ce(const int* targets, bool grad);
  // Rows [r0, r1) of the classifier: out [r1 − r0, V] = xf[r0:r1]·Wᵀ; backward dxn[r0:r1] =
  // dl·W (overwritten) and dW += dlᵀ·xf[r0:r1] when it trains.
  void classifier_forward(int64_t r0, int64_t r1, float* out);
  void classifier_backward(int64_t r0, int64_t r1, const float* dl);
  int64_t N() const { return int64_t(B) * T; }
  // Where layer l's activations sit: its row of the [L, ...] tensors, and res[l].
  int64_t li(int l) const { return save_gse || recompute ? 0 : l; }
  float* res_at(int l) const { return a.res + (save_gse ? l % 2 : l) * N() * cfg.dim; }
  // --save-act gse (llama_saved.cpp)
  std::array<SavedView, kSavedPerLayer> saved_views(int l) const;  // in the order of `saved`
  void carve_saved();                               // the GSE copies for the current (B, T)
  void save_layer(int l);                           // working set → saved[l]
  void restore_layer(int l);                        // saved[l] → working set
  double loss_saving_probs(const int* targets);     // classifier + mean cross-entropy; softmax → saved_probs
  void classifier_backward_from_saved(const int* targets);  // dlogits from saved_probs, a block at a time
};

// Slot i of a layer, in the order of kProjections (io/projections.h).
std::unique_ptr<Linear<float>>& slot_ref(LlamaLayer& layer, int i);

}  // namespace qtune
