// io/gguf_act.h — the activation quantization a deployed model was fine-tuned with, as GGUF
// keys (written by `qtune merge`, read by every loader so the model runs as it trained):
//   qtune.act.bits           u32   0 = float activations, else the integer width (8: int8)
//   qtune.act.scale.<stem>   f32   the calibrated static per-tensor scale of that slot's input
// A slot without a scale quantizes its input per token (dynamic).
#pragma once
#include <functional>
#include <map>
#include <string>

namespace qtune {

class GgufFile;
class GgufWriter;

struct ActSetting {
  int bits = 0;
  std::map<std::string, float> scales;  // by slot stem ("blk.0.attn_q")
};

// is_stem(stem): whether the model has a slot of that name; a scale for anything else, bits
// outside {0, 2..16} or a scale that is not finite and positive is an Error naming the file.
ActSetting read_act_keys(const GgufFile& f, const std::function<bool(const std::string&)>& is_stem);
void write_act_keys(GgufWriter& w, const std::string& path, const ActSetting& a,
                    const std::function<bool(const std::string&)>& is_stem);

}  // namespace qtune
