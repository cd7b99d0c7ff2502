// io/gguf_act.cpp — see gguf_act.h.
#include "io/gguf_act.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "io/gguf.h"

namespace qtune {

namespace {
const std::string kActBits = "qtune.act.bits", kActScale = "qtune.act.scale.", kActTable = "qtune.act.table.";
const char* const kTableFields[] = {".bits", ".stride", ".scale", ".zero"};
}  // namespace

void check_step_table(const StepActTable& t, const std::string& where) {
  QT_CHECK(t.bits >= 2 && t.bits <= 8, "{}: {} activation bits (a per-step table has 2..8)", where, t.bits);
  QT_CHECK(t.stride >= 1, "{}: stride {} (must be >= 1 timestep per entry)", where, t.stride);
  QT_CHECK(!t.scale.empty() && t.scale.size() == t.zero.size(), "{}: {} scales and {} zero points (need K >= 1 of each)",
           where, t.scale.size(), t.zero.size());
  for (size_t j = 0; j < t.scale.size(); ++j) {
    QT_CHECK(std::isfinite(t.scale[j]) && t.scale[j] > 0, "{}: step {}: scale {} must be finite and positive", where,
             j, t.scale[j]);
    QT_CHECK(t.zero[j] >= 0 && t.zero[j] < (1 << t.bits), "{}: step {}: zero point {} is outside 0..{}", where, j,
             t.zero[j], (1 << t.bits) - 1);
  }
}

std::string describe_step_tables(const std::map<std::string, StepActTable>& tables) {
  if (tables.empty()) return "";
  std::map<int, int> by_bits;  // activation bits → slots
  int steps = 0;
  for (const auto& [stem, t] : tables) {
    ++by_bits[t.bits];
    steps = std::max(steps, t.steps());
  }
  std::string parts;
  for (const auto& [b, k] : by_bits) parts += fmt::format("{}{}-bit on {} slots", parts.empty() ? "" : ", ", b, k);
  return fmt::format("{}; {}-entry tables", parts, steps);
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
  for (const auto& [key, v] : f.metadata()) {
    if (key.compare(0, kActTable.size(), kActTable) != 0 || !key.ends_with(".bits")) continue;
    const std::string stem = key.substr(kActTable.size(), key.size() - kActTable.size() - 5);
    QT_CHECK(is_stem(stem), "{}: key '{}': '{}' is not a projection of this model", f.path(), excerpt(key),
             excerpt(stem));
    const std::string k = kActTable + stem;
    for (const char* field : kTableFields)
      QT_CHECK(f.has(k + field), "{}: key '{}{}' is missing (a per-step activation table has bits, stride, scale, "
               "zero)", f.path(), excerpt(k), field);
    StepActTable t;
    t.bits = int(f.get_u32(k + ".bits"));
    t.stride = int(std::min<uint32_t>(f.get_u32(k + ".stride"), 1u << 30));
    t.scale = f.get_arr_f32(k + ".scale");
    t.zero = f.get_arr_i32(k + ".zero");
    check_step_table(t, fmt::format("{}: activation table of '{}'", f.path(), excerpt(stem)));
    a.tables[stem] = std::move(t);
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
  for (const auto& [stem, t] : a.tables) {
    QT_CHECK(is_stem(stem), "{}: activation table for '{}', which is not a projection of the model", path, stem);
    check_step_table(t, fmt::format("{}: activation table of '{}'", path, stem));
    const std::string k = kActTable + stem;
    w.set_u32(k + ".bits", uint32_t(t.bits));
    w.set_u32(k + ".stride", uint32_t(t.stride));
    w.set_arr_f32(k + ".scale", t.scale);
    w.set_arr_i32(k + ".zero", t.zero);
  }
}

}  // namespace qtune
