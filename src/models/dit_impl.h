// models/dit_impl.h — the private state of Dit<T>, shared by dit.cpp, dit_forward.cpp and
// dit_backward.cpp (include only from src/models/).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "adapters/linear.h"
#include "core/buffer.h"
#include "models/dit.h"

namespace qtune {

// Parameters outside the slots, carved from one Buffer (and its twin for gradients).
// L = depth, D = dim, H = hidden, P = patch_dim, K = classes.
template <class T>
struct DitBase {
  T* patch_b = nullptr;  // [D]
  T* t1_b = nullptr;     // [D]
  T* t2_b = nullptr;     // [D]
  T* y_embd = nullptr;   // [K+1, D]
  T* q_b = nullptr;      // [L, D]
  T* k_b = nullptr;      // [L, D]
  T* v_b = nullptr;      // [L, D]
  T* o_b = nullptr;      // [L, D]
  T* up_b = nullptr;     // [L, H]
  T* down_b = nullptr;   // [L, D]
  T* ada_b = nullptr;    // [L, 6D]
  T* fada_b = nullptr;   // [2D]
  T* out_b = nullptr;    // [P]
};

template <class T>
struct DitLayer {
  std::unique_ptr<Linear<T>> q, k, v, o, up, down, ada;
};

// Saved activations of one forward at batch B, N = B·Tk tokens (Tk = tokens per image).
template <class T>
struct DitActs {
  T* pos = nullptr;     // [Tk, D] fixed position embedding
  T* tok = nullptr;     // [N, P] patchified input
  T* tval = nullptr;    // [B] timesteps as T
  T* tfreq = nullptr;   // [B, F] sinusoidal timestep embedding
  T* th = nullptr;      // [B, D] t_embd.fc1 output
  T* ths = nullptr;     // [B, D] SiLU(th)
  T* c = nullptr;       // [B, D] conditioning: t_embd.fc2(ths) + y_embd[y]
  T* cs = nullptr;      // [B, D] SiLU(c), the input of every adaLN
  T* res = nullptr;     // [L+1, N, D] residual stream
  T* mod = nullptr;     // [L, B, 6D] adaLN output
  T* mean1 = nullptr;   // [L, N]
  T* rstd1 = nullptr;   // [L, N]
  T* xm1 = nullptr;     // [L, N, D] modulate(LN(x))
  T* q = nullptr;       // [L, N, D]
  T* k = nullptr;       // [L, N, D]
  T* v = nullptr;       // [L, N, D]
  T* lse = nullptr;     // [L, B, nh, Tk] attention's log-sum-exp per query row (nn/ops.h)
  T* attn_y = nullptr;  // [L, N, D]
  T* ao = nullptr;      // [L, N, D] attn_output(attn_y) + bias
  T* mid = nullptr;     // [L, N, D] residual after the attention branch
  T* mean2 = nullptr;   // [L, N]
  T* rstd2 = nullptr;   // [L, N]
  T* xm2 = nullptr;     // [L, N, D]
  T* h = nullptr;       // [L, N, H] ffn_up output
  T* hg = nullptr;      // [L, N, H] GELU(h)
  T* fo = nullptr;      // [L, N, D] ffn_down output
  T* fmod = nullptr;    // [B, 2D] output_adaln output
  T* meanf = nullptr;   // [N]
  T* rstdf = nullptr;   // [N]
  T* xmf = nullptr;     // [N, D]
  T* otok = nullptr;    // [N, P] output tokens
  T* pred = nullptr;    // [B, C, H, W] ε̂
};

// Activation gradients, one layer at a time (reused down the layers).
template <class T>
struct DitGrads {
  T* dres = nullptr;     // [N, D]
  T* xn = nullptr;       // [N, D] a LayerNorm output, recomputed from mean and rstd
  T* dxn = nullptr;      // [N, D] gradient at a LayerNorm output
  T* dxm = nullptr;      // [N, D] gradient at a modulate output
  T* dq = nullptr;       // [N, D]
  T* dk = nullptr;       // [N, D]
  T* dv = nullptr;       // [N, D]
  T* dattn_y = nullptr;  // [N, D]
  T* dbr = nullptr;      // [N, D] gradient at a branch output (ao or fo)
  T* dh = nullptr;       // [N, H]
  T* dhg = nullptr;      // [N, H]
  T* dmod = nullptr;     // [B, 6D]
  T* dfmod = nullptr;    // [B, 2D]
  T* dcs = nullptr;      // [B, D]
  T* dc = nullptr;       // [B, D]
  T* dths = nullptr;     // [B, D]
  T* dth = nullptr;      // [B, D]
  T* dotok = nullptr;    // [N, P]
  T* dtok = nullptr;     // [N, P]
  T* dpred = nullptr;    // [B, C, H, W]
  T* dx = nullptr;       // [B, C, H, W] input gradient
};

template <class T>
struct Dit<T>::Impl {
  DitConfig cfg;
  bool base_trainable = false;
  Buffer<T> params, grads;
  int64_t n_base = 0;
  DitBase<T> p, g;  // g all-null when the base is frozen (but g.y_embd with train_class_embedding)
  bool train_class_embedding = false;  // an adapter method that also trains y_embd
  std::vector<T> y_embd_grad;          // its gradient then
  std::unique_ptr<Linear<T>> patch, t1, t2, fada, out;
  std::vector<DitLayer<T>> layers;
  Context ctx;

  Buffer<T> act_mem, grad_mem;
  DitActs<T> a;
  DitGrads<T> d;
  int B = 0;
  std::vector<int> y;
  std::vector<int> tsteps;  // [B] the last forward's timesteps (Context::timesteps points here)
  std::vector<T> eps;
  bool has_eps = false;
  int64_t loss_images = 0;  // forward's: the images the loss is averaged over (0: B)
  int64_t loss_numel(int64_t per_image) const { return (loss_images > 0 ? loss_images : B) * per_image; }

  int64_t N() const { return int64_t(B) * cfg.tokens(); }
  void carve_acts(int B);
  void carve_grads();
  void forward_cond(const int* t);
  void forward_layer(int l);
  void backward_layer(int l);
  void backward_cond();
  void backward_from_pred();

  // f(stem, slot) for every slot, in dit_slot_stems order.
  template <class F>
  void for_each_slot(F&& f) {
    f(std::string("patch_embd"), patch);
    f(std::string("t_embd.fc1"), t1);
    f(std::string("t_embd.fc2"), t2);
    for (int l = 0; l < cfg.depth; ++l) {
      DitLayer<T>& ly = layers[l];
      const std::string b = "blk." + std::to_string(l) + ".";
      f(b + "attn_q", ly.q);
      f(b + "attn_k", ly.k);
      f(b + "attn_v", ly.v);
      f(b + "attn_output", ly.o);
      f(b + "ffn_up", ly.up);
      f(b + "ffn_down", ly.down);
      f(b + "adaln", ly.ada);
    }
    f(std::string("output_adaln"), fada);
    f(std::string("output"), out);
  }
};

}  // namespace qtune
