// models/efficientdm.cpp — see efficientdm.h.
#include "models/efficientdm.h"

#include <algorithm>
#include <cmath>

#include "adapters/methods.h"
#include "adapters/qalora.h"
#include "adapters/talsq.h"
#include "core/error.h"

namespace qtune {

bool is_efficientdm_edge_slot(const std::string& stem) {
  return stem == "patch_embd" || stem.starts_with("t_embd.") || stem == "output_adaln" || stem == "output";
}

MethodOptions efficientdm_method(const EfficientDmOptions& o) {
  MethodOptions m;
  m.method = "qalora";
  m.bits = o.bits;
  m.rank = o.rank;
  m.scale_lr = o.scale_lr;
  m.act_bits = 0;
  return m;
}

template <class T>
typename Dit<T>::SlotMaker efficientdm_slots(const EfficientDmOptions& o,
                                             std::shared_ptr<std::map<std::string, double>> mean_scales) {
  QT_CHECK(o.bits >= 2 && o.bits <= 8 && o.act_bits >= 2 && o.act_bits <= 8 && o.edge_bits >= 2 && o.edge_bits <= 8,
           "efficientdm: weight and activation bits must be 2..8 (got W{} A{}, edges {})", o.bits, o.act_bits,
           o.edge_bits);
  QT_CHECK(o.rank >= 1 && o.steps >= 1 && o.stride >= 1, "efficientdm: rank {}, steps {}, stride {} must be >= 1",
           o.rank, o.steps, o.stride);
  return [o, mean_scales](const std::string& stem, const Tensor& w, Rng& rng) -> std::unique_ptr<Linear<T>> {
    QuantSpec spec;  // EfficientDM: per-row asymmetric min/max
    const bool edge = is_efficientdm_edge_slot(stem);
    spec.bits = edge ? o.edge_bits : o.bits;
    std::unique_ptr<Linear<T>> inner;
    if (edge) {
      inner = make_qlora<T>(stem, w, spec, false, 1, 1.0f, rng);
    } else {
      const QuantMatrix q = quantize(w.ptr(), w.shape[0], w.shape[1], spec);
      double sum = 0;
      for (float s : q.scale) sum += s;
      (*mean_scales)[stem] = sum / double(q.scale.size());
      inner = o.qat ? make_qat<T>(stem, w, spec, o.scale_lr) : make_qalora<T>(stem, w, spec, o.rank, rng, o.scale_lr);
    }
    return make_talsq<T>(stem, std::move(inner), edge ? o.edge_bits : o.act_bits, o.steps, o.stride, o.act_lr);
  };
}

template <class T>
std::pair<double, double> apply_scale_aware_lr(std::vector<Param<T>>& params,
                                               const std::map<std::string, double>& mean_scales) {
  QT_CHECK(!mean_scales.empty(), "scale-aware learning rates: no QALoRA slot");
  double mean = 0;
  for (const auto& [stem, m] : mean_scales) mean += m;
  mean /= double(mean_scales.size());
  double lo = HUGE_VAL, hi = 0;
  for (Param<T>& p : params)
    for (const char* suffix : {".lora_a", ".lora_b"})
      if (p.name.ends_with(suffix)) {
        const std::string stem = p.name.substr(0, p.name.size() - std::string(suffix).size());
        const auto it = mean_scales.find(stem);
        QT_CHECK(it != mean_scales.end(), "scale-aware learning rates: no weight scale for '{}'", stem);
        p.lr_scale = float(it->second / mean);
        lo = std::min(lo, double(p.lr_scale));
        hi = std::max(hi, double(p.lr_scale));
      }
  return {lo, hi};
}

#define QT_INSTANTIATE(T)                                                                                        \
  template typename Dit<T>::SlotMaker efficientdm_slots<T>(const EfficientDmOptions&,                           \
                                                           std::shared_ptr<std::map<std::string, double>>);     \
  template std::pair<double, double> apply_scale_aware_lr<T>(std::vector<Param<T>>&,                            \
                                                             const std::map<std::string, double>&);
QT_INSTANTIATE(float)
QT_INSTANTIATE(double)
#undef QT_INSTANTIATE

}  // namespace qtune
