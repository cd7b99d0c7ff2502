#include "io/hf_layout.h"

#include <array>
#include <cstring>

#include "core/error.h"
#include "io/projections.h"

namespace qtune {
namespace {

constexpr std::array<const char*, kNumProjections> kModules = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

// Per-layer tensors that are not projections: {HF module, GGUF stem}.
constexpr std::array<std::array<const char*, 2>, 2> kNorms = {{{"input_layernorm", "attn_norm"},
                                                               {"post_attention_layernorm", "ffn_norm"}}};

// "<prefix><N>.<rest>" → N and rest; false when the name does not have that form.
bool split_layer(const std::string& name, const std::string& prefix, int* layer, std::string* rest) {
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  size_t i = prefix.size(), j = i;
  while (j < name.size() && j - i < 6 && name[j] >= '0' && name[j] <= '9') ++j;
  if (j == i || j >= name.size() || name[j] != '.') return false;
  if (j - i > 1 && name[i] == '0') return false;  // "01" is not a layer number
  *layer = std::stoi(name.substr(i, j - i));
  *rest = name.substr(j + 1);
  return true;
}

void check_layout(int64_t rows, int64_t head_dim) {
  QT_CHECK(head_dim > 0 && head_dim % 2 == 0 && rows % head_dim == 0,
           "HF q/k permutation: {} rows are not whole heads of even size {}", rows, head_dim);
}

}  // namespace

const char* hf_projection_module(int slot) { return kModules.at(size_t(slot)); }

const char* hf_projection_short(int slot) { return std::strchr(kModules.at(size_t(slot)), '.') + 1; }

int hf_projection_slot(const std::string& short_name) {
  for (int i = 0; i < kNumProjections; ++i)
    if (short_name == hf_projection_short(i)) return i;
  return -1;
}

std::optional<std::string> gguf_name_of_hf(const std::string& hf) {
  if (hf == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf == "model.norm.weight") return "output_norm.weight";
  if (hf == "lm_head.weight") return "output.weight";
  int layer = 0;
  std::string rest;
  if (!split_layer(hf, "model.layers.", &layer, &rest)) return std::nullopt;
  const std::string blk = "blk." + std::to_string(layer) + ".";
  for (int i = 0; i < kNumProjections; ++i)
    if (rest == std::string(kModules[size_t(i)]) + ".weight") return blk + kProjections[size_t(i)].gguf + ".weight";
  for (const auto& [module, stem] : kNorms)
    if (rest == std::string(module) + ".weight") return blk + stem + ".weight";
  return std::nullopt;
}

std::string hf_name_of_gguf(const std::string& g) {
  if (g == "token_embd.weight") return "model.embed_tokens.weight";
  if (g == "output_norm.weight") return "model.norm.weight";
  if (g == "output.weight") return "lm_head.weight";
  int layer = 0;
  std::string rest;
  if (split_layer(g, "blk.", &layer, &rest)) {
    const std::string hf = "model.layers." + std::to_string(layer) + ".";
    for (int i = 0; i < kNumProjections; ++i)
      if (rest == std::string(kProjections[size_t(i)].gguf) + ".weight") return hf + kModules[size_t(i)] + ".weight";
    for (const auto& [module, stem] : kNorms)
      if (rest == std::string(stem) + ".weight") return hf + module + ".weight";
  }
  fail("tensor '{}' has no Hugging Face name", g);
}

int64_t hf_row_source(int64_t r, int64_t head_dim) {
  const int64_t half = head_dim / 2, h = r / head_dim, j = r % head_dim;
  const int64_t c = j / half, i = j % half;
  return h * head_dim + 2 * i + c;
}

void meta_to_hf_rows(const float* src, float* dst, int64_t rows, int64_t cols, int64_t head_dim) {
  check_layout(rows, head_dim);
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(dst + r * cols, src + hf_row_source(r, head_dim) * cols, size_t(cols) * sizeof(float));
}

void hf_to_meta_rows(const float* src, float* dst, int64_t rows, int64_t cols, int64_t head_dim) {
  check_layout(rows, head_dim);
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(dst + hf_row_source(r, head_dim) * cols, src + r * cols, size_t(cols) * sizeof(float));
}

}  // namespace qtune
