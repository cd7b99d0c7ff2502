#include "adapters/method_options.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <type_traits>

#include "core/error.h"

namespace qtune {

const std::vector<MethodInfo>& methods() {
  // default_lr: the best learning rate of the KJV sweeps (README "Learning rates").
  //                                  adapter lora_scale quantized integer intlora loldu gse_gemm lr
  static const std::vector<MethodInfo> m = {
      {"full", false, false, false, false, false, false, true, 3e-3f},
      {"lora", true, true, false, false, false, false, true, 1e-2f},
      {"qlora", true, true, true, false, false, false, true, 1e-2f},
      {"qalora", true, false, true, true, false, false, false, 1e-2f},
      {"intlora-mul", true, false, true, true, true, false, false, 1e-2f},
      {"intlora-shift", true, false, true, true, true, false, false, 1e-2f},
      {"loldu", true, false, false, false, false, true, false, 3e-2f},
      {"qloldu", true, false, true, false, false, true, false, 3e-2f},
      {"qaloldu", true, false, true, true, false, true, false, 3e-2f},
  };
  return m;
}

std::vector<std::string> method_names() {
  std::vector<std::string> v;
  for (const auto& m : methods()) v.emplace_back(m.name);
  return v;
}

const MethodInfo& method_info(const std::string& name) {
  for (const auto& m : methods())
    if (name == m.name) return m;
  fail("unknown method '{}' (valid: {})", name, fmt::join(method_names(), ", "));
}

bool applies(Applies a, const MethodInfo& m) {
  switch (a) {
    case Applies::all: return true;
    case Applies::adapter: return m.adapter;
    case Applies::lora_scale: return m.lora_scale;
    case Applies::alpha: return m.lora_scale || m.loldu;
    case Applies::quantized_base: return m.quantized_base;
    case Applies::qalora: return std::string(m.name) == "qalora";
    case Applies::intlora: return m.intlora;
    case Applies::loldu: return m.loldu;
    case Applies::gse_gemm: return m.gse_gemm;
  }
  return false;
}

std::string applies_str(Applies a) {
  if (a == Applies::all) return "every method";
  std::vector<std::string> names;
  for (const auto& m : methods())
    if (applies(a, m)) names.emplace_back(m.name);
  if (names.size() == 1) return names[0];
  const std::string last = names.back();
  names.pop_back();
  return fmt::format("{} and {}", fmt::join(names, ", "), last);
}

// ---- values as strings ---------------------------------------------------------------------

std::string option_value_str(const std::string& v) { return v; }
std::string option_value_str(int v) { return std::to_string(v); }
std::string option_value_str(float v) { return fmt::format("{}", v); }  // shortest round-trip form
std::string option_value_str(bool v) { return v ? "true" : "false"; }
std::string option_value_str(const std::vector<std::string>& v) { return fmt::format("{}", fmt::join(v, ",")); }
std::string rank_str(int rank) { return rank == kFullRank ? "full" : std::to_string(rank); }

void parse_option_value(const std::string& s, std::string& out) { out = s; }

void parse_option_value(const std::string& s, int& out) {
  errno = 0;
  char* end = nullptr;
  const long x = std::strtol(s.c_str(), &end, 10);
  QT_CHECK(!s.empty() && *end == '\0' && errno == 0 && x >= INT32_MIN && x <= INT32_MAX, "'{}' is not an integer", s);
  out = static_cast<int>(x);
}

void parse_option_value(const std::string& s, float& out) {
  errno = 0;
  char* end = nullptr;
  const float x = std::strtof(s.c_str(), &end);
  QT_CHECK(!s.empty() && *end == '\0' && errno == 0, "'{}' is not a number", s);
  out = x;
}

void parse_option_value(const std::string& s, bool& out) {
  QT_CHECK(s == "true" || s == "false", "'{}' is not true or false", s);
  out = s == "true";
}

void parse_option_value(const std::string& s, std::vector<std::string>& out) {
  out.clear();
  for (size_t a = 0, b; a <= s.size(); a = b + 1) {
    b = s.find(',', a);
    if (b == std::string::npos) b = s.size();
    out.push_back(s.substr(a, b - a));
  }
}

namespace {

// The valid values of an option in words: "2..8", ">= 1", "> 0", "auto, minmax, mse"; "" = any.
std::string valid_values(const OptionInfo& info) {
  if (!info.choices.empty()) return fmt::format("{}", fmt::join(info.choices, ", "));
  if (info.positive) return "> 0";
  if (info.min == -HUGE_VAL) return "";
  std::string v = info.max >= (1 << 20) ? fmt::format(">= {}", info.min) : fmt::format("{}..{}", info.min, info.max);
  for (const auto& n : info.named) v += " or " + n.first;
  return v;
}

bool is_named(int v, const OptionInfo& info) {
  for (const auto& n : info.named)
    if (v == n.second) return true;
  return false;
}

bool is_choice(const std::string& s, const OptionInfo& info) {
  return info.choices.empty() || std::find(info.choices.begin(), info.choices.end(), s) != info.choices.end();
}

// The offending value of v as a string, or "" when v is valid for info.
template <class T>
std::string invalid_part(const T& v, const OptionInfo& info) {
  if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    if (v.empty()) return "''";
    for (const auto& s : v)
      if (!is_choice(s, info)) return "'" + s + "'";
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!is_choice(v, info)) return "'" + v + "'";
  } else if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
    if constexpr (std::is_same_v<T, int>)
      if (is_named(v, info)) return "";
    const double x = v;
    if (!std::isfinite(x) || x < info.min || x > info.max || (info.positive && !(x > 0)) ||
        !is_choice(option_value_str(v), info))
      return option_value_str(v);
  }
  return "";
}

}  // namespace

void validate(const MethodOptions& o) {
  method_info(o.method);  // throws for an unknown method
  o.for_each([&](const auto& value, const OptionInfo& info) {
    const std::string bad = invalid_part(value, info);
    QT_CHECK(bad.empty(), "--{} {} is invalid (valid: {})", info.name, bad, valid_values(info));
  });
  QT_CHECK(!(o.zero_free && o.symmetric), "--zero-free is already symmetric: drop --symmetric");
  try {
    parse_gemm_mode(o.gemm);
  } catch (const Error& e) {  // parse_gemm_mode names --gemm for a bad prefix; a bad spec does not
    const std::string m = e.what();
    fail("{}", m.starts_with("--gemm") ? m : "--gemm " + m);
  }
  QT_CHECK(!o.gemm_attention || gemm_mode(o).gse, "--gemm-attention runs attention's products in GSE: it needs "
           "--gemm gse:...");
  QT_CHECK(!o.recompute || o.save_act != "gse", "--recompute and --save-act gse both shrink what backward keeps "
           "(recomputing it, or storing it in GSE): use one of them");
}

GemmMode gemm_mode(const MethodOptions& o) { return parse_gemm_mode(o.gemm); }

MethodOptions float_arithmetic(MethodOptions o) {
  o.gemm = "f32";
  o.save_act = "f32";
  o.gemm_attention = false;
  return o;
}

RunSettings settings_of(const MethodOptions& o) {
  const MethodInfo& m = method_info(o.method);
  RunSettings s;
  o.for_each([&](const auto& value, const OptionInfo& info) {
    if (applies(info.applies, m)) s.emplace_back(info.name, option_value_str(value, info));
  });
  return s;
}

MethodOptions options_from_settings(const RunSettings& s, const std::string& where) {
  MethodOptions o;
  const std::string* method = find_setting(s, "method");
  QT_CHECK(method, "{}: has no run setting 'method' (qtune.run.method)", where);
  const MethodInfo& m = method_info(*method);
  o.for_each([&](auto& value, const OptionInfo& info) {
    if (!applies(info.applies, m)) return;
    const std::string* v = find_setting(s, info.name);
    const std::string predates = info.predates ? info.predates : "";
    if (!v && info.predates) v = &predates;  // the file predates the option (OptionInfo::predates)
    QT_CHECK(v, "{}: has no run setting '{}' (qtune.run.{}), which --method {} needs (written by another version "
             "of qtune?)", where, info.name, info.name, *method);
    try {
      parse_option_value(*v, value, info);
    } catch (const Error& e) {
      fail("{}: run setting '{}': {}", where, info.name, e.what());
    }
  });
  try {
    validate(o);
  } catch (const Error& e) {
    fail("{}: recorded {}", where, e.what());
  }
  return o;
}

QuantSpec base_quant_spec(const MethodOptions& o) {
  QuantSpec s;
  s.bits = o.bits;
  s.group = o.group;
  s.symmetric = o.symmetric;
  s.mse_search = o.scale_search == "mse" || (o.scale_search == "auto" && is_intlora(o.method));
  s.zero_free = o.zero_free;
  return s;
}

}  // namespace qtune
