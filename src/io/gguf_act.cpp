// io/gguf_act.cpp — see gguf_act.h.
#include "io/gguf_act.h"

#include <cmath>

#include "core/error.h"
#include "io/gguf.h"

namespace qtune {

namespace {
const std::string kActBits = "qtune.act.bits", kActScale = "qtune.act.scale.";
}

ActSetting read_act_keys(const GgufFile& f, const std::function<bool(const std::string&)>& is_stem) {
  ActSetting a;
  if (f.has(kActBits)) {
    const uint32_t b = f.get_u32(kActBits);
    QT_CHECK(b == 0 || (b >= 2 && b <= 16), "{}: key '{}': {} activation bits (0 = float, or 2..16)", f.path(),
             kActBits, b);
    a.bits = int(b);
  }
  for (const auto& [key, v] : f.metadata()) {
    if (key.compare(0, kActScale.size(), kActScale) != 0) continue;
    const std::string stem = key.substr(kActScale.size());
    QT_CHECK(is_stem(stem), "{}: key '{}': '{}' is not a projection of this model", f.path(), excerpt(key),
             excerpt(stem));
    const float s = f.get_f32(key);
    QT_CHECK(std::isfinite(s) && s > 0, "{}: key '{}': activation scale {} must be finite and positive", f.path(),
             excerpt(key), s);
    a.scales[stem] = s;
  }
  return a;
}

void write_act_keys(GgufWriter& w, const std::string& path, const ActSetting& a,
                    const std::function<bool(const std::string&)>& is_stem) {
  QT_CHECK(a.bits == 0 || (a.bits >= 2 && a.bits <= 16), "{}: activation bits {} (0 = float, or 2..16)", path,
           a.bits);
  if (a.bits != 0 || !a.scales.empty()) w.set_u32(kActBits, uint32_t(a.bits));
  for (const auto& [stem, s] : a.scales) {
    QT_CHECK(is_stem(stem), "{}: activation scale for '{}', which is not a projection of the model", path, stem);
    QT_CHECK(std::isfinite(s) && s > 0, "{}: activation scale of '{}' is {}: must be finite and positive", path, stem,
             s);
    w.set_f32(kActScale + stem, s);
  }
}

}  // namespace qtune
