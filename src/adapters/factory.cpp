// adapters/factory.cpp — the CLI's method options → one Linear per weight slot.
#include <algorithm>
#include <cmath>

#include "adapters/methods.h"
#include "core/error.h"

namespace qtune {

namespace {

const std::vector<std::string>& known_targets() {
  static const std::vector<std::string> t = {"q", "k", "v", "o", "gate", "up", "down", "output"};
  return t;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

QuantSpec quant_spec(const MethodOptions& o) {
  QuantSpec s;
  s.bits = o.bits;
  s.group = o.group;
  s.symmetric = o.symmetric;
  s.mse_search = o.scale_search == "mse";
  return s;
}

}  // namespace

const std::vector<std::string>& known_methods() {
  static const std::vector<std::string> m = {"full", "lora", "qlora"};
  return m;
}

void validate(const MethodOptions& o) {
  QT_CHECK(contains(known_methods(), o.method), "unknown method '{}' (valid: {})", o.method,
           fmt::join(known_methods(), ", "));
  QT_CHECK(o.rank >= 1, "--rank {} is invalid (must be >= 1)", o.rank);
  QT_CHECK(std::isfinite(o.alpha), "--alpha must be a finite number");
  QT_CHECK(o.bits >= 2 && o.bits <= 8, "--bits {} is not supported (valid: 2..8)", o.bits);
  QT_CHECK(o.group >= 0, "--group {} is invalid (0 = per row, or a positive group size)", o.group);
  QT_CHECK(o.scale_search == "minmax" || o.scale_search == "mse",
           "unknown --scale-search '{}' (valid: minmax, mse)", o.scale_search);
  QT_CHECK(!o.targets.empty(), "--target is empty (valid: {})", fmt::join(known_targets(), ", "));
  for (const auto& t : o.targets)
    QT_CHECK(contains(known_targets(), t), "unknown --target '{}' (valid: {})", t, fmt::join(known_targets(), ", "));
}

template <class T>
std::unique_ptr<Linear<T>> make_linear(const MethodOptions& o, const std::string& name, const Tensor& w,
                                       bool targeted, Rng& rng) {
  validate(o);
  if (o.frozen) return make_dense<T>(name, w, false);
  if (o.method == "full") return make_dense<T>(name, w, targeted);
  if (o.method == "lora") return targeted ? make_lora<T>(name, w, o.rank, o.alpha, rng) : make_dense<T>(name, w, false);
  // qlora: every slot's base is quantized; only targeted slots carry an adapter
  return make_qlora<T>(name, w, quant_spec(o), targeted, o.rank, o.alpha, rng);
}

template std::unique_ptr<Linear<float>> make_linear<float>(const MethodOptions&, const std::string&, const Tensor&,
                                                           bool, Rng&);
template std::unique_ptr<Linear<double>> make_linear<double>(const MethodOptions&, const std::string&, const Tensor&,
                                                             bool, Rng&);

// "blk.3.ffn_gate" → "gate"; accepts a trailing ".weight". GGUF LLaMA names:
// attn_q/k/v, attn_output, ffn_gate/up/down per block, and "output" (the LM head).
std::string target_of(const std::string& tensor_name) {
  std::string n = tensor_name;
  const std::string suffix = ".weight";
  if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0)
    n.resize(n.size() - suffix.size());
  if (n == "output") return "output";
  const auto dot = n.rfind('.');
  const std::string last = dot == std::string::npos ? n : n.substr(dot + 1);
  static const std::pair<const char*, const char*> map[] = {
      {"attn_q", "q"},       {"attn_k", "k"},   {"attn_v", "v"},     {"attn_output", "o"},
      {"ffn_gate", "gate"}, {"ffn_up", "up"}, {"ffn_down", "down"},
  };
  if (n.rfind("blk.", 0) != 0) return "";
  for (const auto& [gguf, short_name] : map)
    if (last == gguf) return short_name;
  return "";
}

}  // namespace qtune
