// io/dit_file.h — a diffusion transformer (DiT) as stored on disk: its config and float
// tensors by GGUF name, read from and written to a GGUF with general.architecture = "dit"
// (layout: docs/DESIGN.md §11).
//
// Tensors (outermost first; D = dim, P = channels·patch², F = freq_dim, H = hidden, K = classes):
//   patch_embd.weight        [D, P]     patch_embd.bias   [D]     (Conv2d k = s = patch, flattened)
//   t_embd.fc1.weight        [D, F]     t_embd.fc1.bias   [D]
//   t_embd.fc2.weight        [D, D]     t_embd.fc2.bias   [D]
//   y_embd.weight            [K+1, D]   row K = the null class (classifier-free guidance)
//   blk.N.attn_q|attn_k|attn_v|attn_output.weight [D, D]   .bias [D]
//   blk.N.ffn_up.weight      [H, D]     blk.N.ffn_up.bias   [H]
//   blk.N.ffn_down.weight    [D, H]     blk.N.ffn_down.bias [D]
//   blk.N.adaln.weight       [6D, D]    blk.N.adaln.bias  [6D]  chunks: shift, scale, gate (attn), shift, scale, gate (mlp)
//   output_adaln.weight      [2D, D]    output_adaln.bias [2D]  chunks: shift, scale
//   output.weight            [P, D]     output.bias       [P]
// The position embedding is fixed (2-D sin-cos) and not stored.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "io/gguf_act.h"
#include "quant/quant.h"

namespace qtune {

struct DitConfig {
  int image = 28, channels = 1, patch = 4;
  int dim = 64, depth = 4, heads = 4, mlp_ratio = 4;
  int num_classes = 10;
  int freq_dim = 256;  // width of the sinusoidal timestep embedding (DiT: 256)
  float norm_eps = 1e-6f;
  int grid() const { return image / patch; }
  int tokens() const { return grid() * grid(); }
  int patch_dim() const { return channels * patch * patch; }
  int hidden() const { return dim * mlp_ratio; }
  int head_dim() const { return dim / heads; }
  int null_class() const { return num_classes; }
  int64_t image_numel() const { return int64_t(channels) * image * image; }
};

// Throws Error naming the field when the config cannot build a DiT (patch must divide the
// image, heads the dim, 4 the dim (the 2-D sin-cos embedding), 2 the freq dim).
void validate(const DitConfig& c);

// Every stored tensor's name and shape, in file order.
std::vector<std::pair<std::string, Shape>> dit_tensor_shapes(const DitConfig& c);
// The slot stems (tensors with ".weight" and ".bias" that are Linear slots), in model order.
std::vector<std::string> dit_slot_stems(const DitConfig& c);

struct DitFile {
  DitConfig config;
  TensorMap tensors;
  // Integer slot weights of a deployed DiT (an exactly merged integer adapter, or post-training
  // quantization), by tensor name ("blk.0.attn_q.weight"), stored exactly as io/gguf_int.h says;
  // a name is in `tensors` or here, never both. Only slot weights (dit_slot_stems) can be integer.
  std::map<std::string, std::vector<QuantMatrix>> quantized;
  ActSetting act;  // the activation quantization it was fine-tuned with (io/gguf_act.h)
  std::map<std::string, std::string> stored_types;  // non-F32 tensor types as stored, for `qtune info`
  std::string path;  // for messages
};

// A slot weight as float: from `tensors`, or the sum of its dequantized integer planes.
Tensor dit_weight_as_float(const DitFile& f, const std::string& name);

// Checks every tensor of dit_tensor_shapes is present (float, or integer for a slot weight) with
// its shape, no other is, and all are finite; throws Error naming the file and tensor.
void validate_dit(const DitFile& f);

DitFile load_dit(const std::string& path);
void save_dit(const std::string& path, const DitFile& f);

}  // namespace qtune
