// adapters/factory.cpp — the CLI's method options → one Linear per weight slot.
#include <algorithm>
#include <cmath>

#include "adapters/intlora.h"
#include "adapters/methods.h"
#include "adapters/qalora.h"
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

// The slot without activation quantization.
template <class T>
std::unique_ptr<Linear<T>> make_method_linear(const MethodOptions& o, const std::string& name, const Tensor& w,
                                              bool targeted, Rng& rng) {
  if (o.method == "full") return make_dense<T>(name, w, targeted);
  if (o.method == "lora") return targeted ? make_lora<T>(name, w, o.rank, o.alpha, rng) : make_dense<T>(name, w, false);
  const QuantSpec spec = base_quant_spec(o);
  // every slot's base is quantized; qlora's targeted slots carry an adapter, and a slot without
  // one (non-targeted, any quantized method) is the frozen b-bit base, merged as its integers
  if (o.method == "qlora" || !targeted) return make_qlora<T>(name, w, spec, targeted, o.rank, o.alpha, rng);
  if (o.method == "qalora") return make_qalora<T>(name, w, spec, o.rank, rng, o.scale_lr, o.lsq_grad_scale);
  IntLoraOptions io;
  io.shift = o.method == "intlora-shift";
  io.spec = spec;
  io.vmc = o.vmc;
  io.vmc_alpha = o.vmc_alpha;
  return make_intlora<T>(name, w, io, o.rank, rng);
}

}  // namespace

const std::vector<std::string>& known_methods() {
  static const std::vector<std::string> m = {"full", "lora", "qlora", "qalora", "intlora-mul", "intlora-shift"};
  return m;
}

bool is_intlora(const std::string& m) { return m == "intlora-mul" || m == "intlora-shift"; }
bool is_integer_method(const std::string& m) { return m == "qalora" || is_intlora(m); }
bool has_quantized_base(const std::string& m) { return m == "qlora" || is_integer_method(m); }

QuantSpec base_quant_spec(const MethodOptions& o) {
  QuantSpec s;
  s.bits = o.bits;
  s.group = o.group;
  s.symmetric = o.symmetric;
  s.mse_search = o.scale_search == "mse" || (o.scale_search == "auto" && is_intlora(o.method));
  s.zero_free = o.zero_free;
  return s;
}

void validate(const MethodOptions& o) {
  QT_CHECK(contains(known_methods(), o.method), "unknown method '{}' (valid: {})", o.method,
           fmt::join(known_methods(), ", "));
  QT_CHECK(o.rank >= 1, "--rank {} is invalid (must be >= 1)", o.rank);
  QT_CHECK(std::isfinite(o.alpha), "--alpha must be a finite number");
  QT_CHECK(o.bits >= 2 && o.bits <= 8, "--bits {} is not supported (valid: 2..8)", o.bits);
  QT_CHECK(o.group >= 0, "--group {} is invalid (0 = per row, or a positive group size)", o.group);
  QT_CHECK(o.scale_search == "minmax" || o.scale_search == "mse" || o.scale_search == "auto",
           "unknown --scale-search '{}' (valid: auto, minmax, mse)", o.scale_search);
  QT_CHECK(!o.targets.empty(), "--target is empty (valid: {})", fmt::join(known_targets(), ", "));
  for (const auto& t : o.targets)
    QT_CHECK(contains(known_targets(), t), "unknown --target '{}' (valid: {})", t, fmt::join(known_targets(), ", "));
  QT_CHECK(o.act_bits == 0 || o.act_bits == 8, "--act-bits {} is not supported (valid: 0 = float, 8)", o.act_bits);
  QT_CHECK(o.act_calib >= 1, "--act-calib {} is invalid (must be >= 1 micro-batch)", o.act_calib);
  QT_CHECK(o.vmc == "abs-max" || o.vmc == "std", "unknown --vmc '{}' (valid: abs-max, std)", o.vmc);
  QT_CHECK(std::isfinite(o.vmc_alpha) && o.vmc_alpha > 0, "--vmc-alpha must be a positive number, got {}",
           o.vmc_alpha);
  QT_CHECK(!o.zero_free || is_intlora(o.method), "--zero-free is an IntLoRA option (method is '{}')", o.method);
  QT_CHECK(!(o.zero_free && o.symmetric), "--zero-free is already symmetric: drop --symmetric");
  QT_CHECK(std::isfinite(o.scale_lr) && o.scale_lr >= 0, "--scale-lr must be a number >= 0, got {}", o.scale_lr);
  QT_CHECK(!o.lsq_grad_scale || o.method == "qalora", "--lsq-grad-scale is a qalora option (method is '{}')",
           o.method);
}

template <class T>
std::unique_ptr<Linear<T>> make_linear(const MethodOptions& o, const std::string& name, const Tensor& w,
                                       bool targeted, Rng& rng) {
  validate(o);
  if (o.frozen) return make_inference_linear<T>(name, &w, nullptr, o.act_bits, 0.0f);
  std::unique_ptr<Linear<T>> lin = make_method_linear<T>(o, name, w, targeted, rng);
  if (o.act_bits == 8) lin = make_act_quant<T>(name, std::move(lin), o.act_calib, 0.0f);
  return lin;
}

template <class T>
std::unique_ptr<Linear<T>> make_inference_linear(const std::string& name, const Tensor* weight,
                                                 const std::vector<QuantMatrix>* planes, int act_bits,
                                                 float act_scale) {
  QT_CHECK((weight != nullptr) != (planes != nullptr), "{}: give either a float weight or integer planes", name);
  if (planes) return make_int_linear<T>(name, *planes, act_bits, act_scale);
  std::unique_ptr<Linear<T>> lin = make_dense<T>(name, *weight, false);
  if (act_bits == 8) lin = make_act_quant<T>(name, std::move(lin), 0, act_scale);
  return lin;
}

#define QT_INSTANTIATE(T)                                                                                   \
  template std::unique_ptr<Linear<T>> make_linear<T>(const MethodOptions&, const std::string&, const Tensor&, \
                                                     bool, Rng&);                                           \
  template std::unique_ptr<Linear<T>> make_inference_linear<T>(const std::string&, const Tensor*,             \
                                                               const std::vector<QuantMatrix>*, int, float);
QT_INSTANTIATE(float)
QT_INSTANTIATE(double)
#undef QT_INSTANTIATE

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
