// io/gguf_act.h — the activation quantization a deployed model was fine-tuned with, as GGUF
// keys (written by `qtune merge`, read by every loader so the model runs as it trained):
//   qtune.act.bits           u32   0 = float activations, else the integer width (8: int8)
//   qtune.act.scale.<stem>   f32   the calibrated static per-tensor scale of that slot's input
// A slot without a scale quantizes its input per token (dynamic).
// A slot with a per-step table (EfficientDM's TALSQ, adapters/talsq.h) instead has
//   qtune.act.table.<stem>.bits    u32        b: asymmetric b-bit codes (2..8)
//   qtune.act.table.<stem>.stride  u32        timesteps per entry (1000 / K for K DDIM steps)
//   qtune.act.table.<stem>.scale   f32[K]     the step size of each entry (finite, > 0)
//   qtune.act.table.<stem>.zero    i32[K]     the zero point of each entry (0..2^b − 1)
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace qtune {

class GgufFile;
class GgufWriter;

// The entry of timestep t in a table of `steps` entries of `stride` timesteps each: round(t / stride)
// (half up), clamped to [0, steps − 1].
inline int step_table_index(int t, int stride, int steps) {
  const int j = (2 * t + stride) / (2 * stride);
  return j < 0 ? 0 : j >= steps ? steps - 1 : j;
}

// One slot's input quantizer per sampling step (TALSQ):
//   x̂ = s[j]·(clamp(round(x / s[j]) + z[j], 0, 2^b − 1) − z[j]),  j = index(t) for the sample's timestep t.
// Sampling with fewer steps than the table has entries reads every (K/K′)-th entry: the timesteps
// of a K′-step DDIM schedule are multiples of 1000/K′ = (K/K′)·stride.
struct StepActTable {
  int bits = 0;
  int stride = 1;
  std::vector<float> scale;   // [K]
  std::vector<int32_t> zero;  // [K]
  int steps() const { return int(scale.size()); }
  int index(int t) const { return step_table_index(t, stride, steps()); }
  bool operator==(const StepActTable&) const = default;
};
// Throws Error naming `where` unless bits ∈ 2..8, stride ≥ 1, K ≥ 1 entries of each, every scale
// finite and positive and every zero in 0..2^b − 1.
void check_step_table(const StepActTable& t, const std::string& where);
// "4-bit on 28 slots, 8-bit on 5 slots; 25-entry tables" (empty without tables), for info and loaders.
std::string describe_step_tables(const std::map<std::string, StepActTable>& tables);

struct ActSetting {
  int bits = 0;
  std::map<std::string, float> scales;  // by slot stem ("blk.0.attn_q")
  std::map<std::string, StepActTable> tables;  // by slot stem: per-step quantizers (TALSQ)
};

// is_stem(stem): whether the model has a slot of that name; a scale for anything else, bits
// outside {0, 2..16} or a scale that is not finite and positive is an Error naming the file.
ActSetting read_act_keys(const GgufFile& f, const std::function<bool(const std::string&)>& is_stem);
void write_act_keys(GgufWriter& w, const std::string& path, const ActSetting& a,
                    const std::function<bool(const std::string&)>& is_stem);

}  // namespace qtune
