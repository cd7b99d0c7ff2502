// io/projections.h — the one table of a LLaMA block's projections: the short name users give
// to --target, the GGUF tensor stem, and the slot index models use. Everything that loops over
// projections, names them or recognises them goes through this table.
#pragma once
#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace qtune {

struct Projection {
  const char* target;  // --target name, e.g. "q"
  const char* gguf;    // GGUF tensor stem inside a block, e.g. "attn_q" (→ "blk.N.attn_q.weight")
};

inline constexpr int kNumProjections = 7;
// Slot order: models index their slots by position in this table.
inline constexpr std::array<Projection, kNumProjections> kProjections = {{
    {"q", "attn_q"},
    {"k", "attn_k"},
    {"v", "attn_v"},
    {"o", "attn_output"},
    {"gate", "ffn_gate"},
    {"up", "ffn_up"},
    {"down", "ffn_down"},
}};

// Slot index of a --target name ("gate" → 4), or -1.
int projection_index(std::string_view target);
// Slot index of a block tensor name ("blk.3.ffn_gate" or "blk.3.ffn_gate.weight" → 4), or -1
// when the name is not a projection of a block.
int projection_of(std::string_view tensor_name);
// "blk.<layer>.<gguf stem>" of slot i.
std::string projection_stem(int layer, int i);
// True for "blk.N.<projection>.weight".
bool is_projection_name(std::string_view name);
// Short target name of a tensor ("blk.3.ffn_gate" → "gate"), "" if it is not a projection.
std::string target_of(std::string_view tensor_name);
// {"q", "k", ..., "down"} in slot order.
std::vector<std::string> projection_targets();

}  // namespace qtune
