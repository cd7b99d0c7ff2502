// adapters/factory.cpp — the CLI's method options → one Linear per weight slot.
#include <algorithm>
#include <cmath>

#include "adapters/intlora.h"
#include "adapters/loldu.h"
#include "adapters/methods.h"
#include "adapters/qalora.h"
#include "core/error.h"

namespace qtune {

namespace {

// --rank resolved for this weight: full → min(out, in). The LDU slice has at most min(out, in)
// pivots, so a LoLDU rank above that is an error.
int slot_rank(const MethodOptions& o, const std::string& name, const Tensor& w) {
  const int64_t most = std::min(w.shape[0], w.shape[1]);
  if (o.rank == kFullRank) return static_cast<int>(most);
  QT_CHECK(!method_info(o.method).loldu || o.rank <= most,
           "--rank {} is above min(out, in) = {} of {} [{}, {}] (an LDU slice has at most that many pivots; "
           "--rank full takes them all)", o.rank, most, name, w.shape[0], w.shape[1]);
  return o.rank;
}

LolduConfig loldu_config(const MethodOptions& o, int rank) {
  LolduConfig c;
  c.rank = rank;
  c.sigma0 = o.alpha / static_cast<float>(rank);
  c.init = o.loldu_init;
  c.train_scale = o.loldu_train_scale;
  return c;
}

// The slot without activation quantization.
template <class T>
std::unique_ptr<Linear<T>> make_method_linear(const MethodOptions& o, const std::string& name, const Tensor& w,
                                              bool targeted, Rng& rng) {
  check_weight(name, w);  // before slot_rank reads the shape
  const MethodInfo& m = method_info(o.method);
  const GemmMode gemm = m.gse_gemm ? gemm_mode(o) : GemmMode{};  // --gemm applies to full, lora, qlora
  if (o.method == "full") return make_dense<T>(name, w, targeted, gemm);
  const int rank = slot_rank(o, name, w);
  if (!m.quantized_base && !targeted) return make_dense<T>(name, w, false, gemm);
  if (o.method == "lora") return make_lora<T>(name, w, rank, o.alpha, rng, gemm);
  if (o.method == "loldu") return make_loldu<T>(name, w, std::nullopt, loldu_config(o, rank), rng);
  const QuantSpec spec = base_quant_spec(o);
  // every slot's base is quantized; qlora's targeted slots carry an adapter, and a slot without
  // one (non-targeted, any quantized method) is the frozen b-bit base, merged as its integers
  if (o.method == "qlora" || !targeted) return make_qlora<T>(name, w, spec, targeted, rank, o.alpha, rng, gemm);
  if (o.method == "qloldu") return make_loldu<T>(name, w, spec, loldu_config(o, rank), rng);
  if (o.method == "qaloldu") return make_qaloldu<T>(name, w, spec, loldu_config(o, rank), rng);
  if (o.method == "qalora") return make_qalora<T>(name, w, spec, rank, rng, o.scale_lr, o.lsq_grad_scale);
  IntLoraOptions io;
  io.shift = o.method == "intlora-shift";
  io.spec = spec;
  io.vmc = o.vmc;
  io.vmc_alpha = o.vmc_alpha;
  return make_intlora<T>(name, w, io, rank, rng);
}

}  // namespace

template <class T>
std::unique_ptr<Linear<T>> make_linear(const MethodOptions& o, const std::string& name, const Tensor& w,
                                       bool targeted, Rng& rng) {
  validate(o);
  if (o.frozen) return make_inference_linear<T>(name, &w, nullptr, o.act_bits, 0.0f);
  std::unique_ptr<Linear<T>> lin = make_method_linear<T>(o, name, w, targeted, rng);
  // --exact-sums: an adapter's gradients are summed exactly per sample, so a step's gradient does
  // not depend on how the batch was split over ranks and micro-batches. Not --gemm gse (its
  // integer sums and stochastic rounding are keyed per call, not per sample).
  if (o.exact_sums && !gemm_mode(o).gse && !lin->trainable().empty()) lin = make_exact_grad<T>(std::move(lin));
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

}  // namespace qtune
