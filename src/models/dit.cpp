// models/dit.cpp — building a Dit from a DitFile: slots, the one buffer of non-slot parameters,
// parameter listings, merging, and DiT's initialisation. Forward and backward live in
// dit_forward.cpp and dit_backward.cpp.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "adapters/talsq.h"
#include "core/error.h"
#include "io/projections.h"
#include "models/dit.h"
#include "models/dit_impl.h"

namespace qtune {

namespace {

// The non-slot tensors: GGUF name, pointer member, element count (layer-stacked ones are
// [L, n] in memory and blk.N.<stem>.bias in the file).
template <class T>
struct BaseEntry {
  const char* name;  // "%" = blk.N. prefix per layer
  T* DitBase<T>::*ptr;
  int64_t n;         // per layer for stacked entries
  bool stacked;
};

template <class T>
std::vector<BaseEntry<T>> base_entries(const DitConfig& c) {
  const int64_t D = c.dim, H = c.hidden(), P = c.patch_dim(), K = c.num_classes;
  using B = DitBase<T>;
  return {{"patch_embd.bias", &B::patch_b, D, false},     {"t_embd.fc1.bias", &B::t1_b, D, false},
          {"t_embd.fc2.bias", &B::t2_b, D, false},        {"y_embd.weight", &B::y_embd, (K + 1) * D, false},
          {"attn_q.bias", &B::q_b, D, true},              {"attn_k.bias", &B::k_b, D, true},
          {"attn_v.bias", &B::v_b, D, true},              {"attn_output.bias", &B::o_b, D, true},
          {"ffn_up.bias", &B::up_b, H, true},             {"ffn_down.bias", &B::down_b, D, true},
          {"adaln.bias", &B::ada_b, 6 * D, true},         {"output_adaln.bias", &B::fada_b, 2 * D, false},
          {"output.bias", &B::out_b, P, false}};
}

template <class T>
int64_t carve_base(const DitConfig& c, Buffer<T>& mem, DitBase<T>& t) {
  const int64_t L = c.depth;
  const auto e = base_entries<T>(c);
  auto n = [&](int i) { return e[i].stacked ? L * e[i].n : e[i].n; };
  return carve(mem, {{&(t.*e[0].ptr), n(0)}, {&(t.*e[1].ptr), n(1)}, {&(t.*e[2].ptr), n(2)}, {&(t.*e[3].ptr), n(3)},
                     {&(t.*e[4].ptr), n(4)}, {&(t.*e[5].ptr), n(5)}, {&(t.*e[6].ptr), n(6)}, {&(t.*e[7].ptr), n(7)},
                     {&(t.*e[8].ptr), n(8)}, {&(t.*e[9].ptr), n(9)}, {&(t.*e[10].ptr), n(10)},
                     {&(t.*e[11].ptr), n(11)}, {&(t.*e[12].ptr), n(12)}});
}

// Calls f(file name, value pointer, grad pointer (null when frozen), count, shape) per tensor.
template <class T, class F>
void for_each_base(const DitConfig& c, const DitBase<T>& p, const DitBase<T>& g, F&& f) {
  for (const BaseEntry<T>& e : base_entries<T>(c)) {
    const Shape shape = std::string(e.name) == "y_embd.weight" ? Shape{c.num_classes + 1, c.dim} : Shape{e.n};
    if (!e.stacked) {
      f(std::string(e.name), p.*e.ptr, g.*e.ptr, e.n, shape);
      continue;
    }
    for (int l = 0; l < c.depth; ++l)
      f(fmt::format("blk.{}.{}", l, e.name), p.*e.ptr + l * e.n, g.*e.ptr ? g.*e.ptr + l * e.n : nullptr, e.n, shape);
  }
}

Tensor tensor_from(const auto* p, Shape s) {
  Tensor t(std::move(s));
  for (int64_t i = 0; i < t.numel(); ++i) t.ptr()[i] = float(p[i]);
  return t;
}

}  // namespace

template <class T>
Dit<T>::Dit(const DitFile& f, const MethodOptions& opts, uint64_t seed, bool train_class_embedding)
    : Dit(f, opts, seed, train_class_embedding, SlotMaker{}) {}

template <class T>
Dit<T>::Dit(const DitFile& f, const MethodOptions& opts, uint64_t seed, bool train_class_embedding,
            const SlotMaker& make)
    : impl_(std::make_unique<Impl>()), cfg_(f.config), opts_(opts) {
  validate_dit(f);
  validate(opts);
  Impl& m = *impl_;
  m.cfg = cfg_;
  // As in Llama: only full fine-tuning trains what is not a block projection.
  m.base_trainable = opts.method == "full" && !opts.frozen;
  m.n_base = carve_base(cfg_, m.params, m.p);
  if (m.base_trainable) carve_base(cfg_, m.grads, m.g);
  if (train_class_embedding && !m.base_trainable && !opts.frozen) {
    m.train_class_embedding = true;
    m.y_embd_grad.assign(size_t(cfg_.num_classes + 1) * cfg_.dim, T(0));
    m.g.y_embd = m.y_embd_grad.data();
  }
  for_each_base(cfg_, m.p, m.g, [&](const std::string& name, T* v, T*, int64_t n, const Shape&) {
    const Tensor& t = f.tensors.at(name);
    for (int64_t i = 0; i < n; ++i) v[i] = T(t.ptr()[i]);
  });
  m.layers.resize(cfg_.depth);
  Rng rng(seed);
  m.for_each_slot([&](const std::string& stem, std::unique_ptr<Linear<T>>& s) {
    const std::string wname = stem + ".weight";
    const auto q = f.quantized.find(wname);
    const auto w = f.tensors.find(wname);
    if (opts.frozen) {  // a model to run: its weights as they are, integer ones on the integer path
      const auto a = f.act.scales.find(stem);
      const float act_scale = opts.act_dynamic || a == f.act.scales.end() ? 0.0f : a->second;
      const auto table = f.act.tables.find(stem);
      const int bits = table != f.act.tables.end() ? 0 : opts.act_bits;  // the table quantizes the input
      s = q != f.quantized.end() ? make_inference_linear<T>(stem, nullptr, &q->second, bits, act_scale)
                                 : make_inference_linear<T>(stem, &w->second, nullptr, bits, act_scale);
      if (table != f.act.tables.end()) s = make_talsq_frozen<T>(stem, std::move(s), table->second);
      return;
    }
    if (make) {
      s = make(stem, w != f.tensors.end() ? w->second : dit_weight_as_float(f, wname), rng);
      return;
    }
    const std::string target = target_of(stem);  // q k v o up down, "" for the other slots
    const bool targeted = target.empty()
                              ? m.base_trainable
                              : std::find(opts.targets.begin(), opts.targets.end(), target) != opts.targets.end();
    s = make_linear<T>(opts, stem, w != f.tensors.end() ? w->second : dit_weight_as_float(f, wname), targeted, rng);
  });
}

template <class T>
Dit<T>::~Dit() = default;

template <class T>
Linear<T>& Dit<T>::slot(const std::string& stem) {
  Linear<T>* found = nullptr;
  impl_->for_each_slot([&](const std::string& s, std::unique_ptr<Linear<T>>& l) {
    if (s == stem) found = l.get();
  });
  QT_CHECK(found, "dit: no slot named '{}'", excerpt(stem));
  return *found;
}

template <class T>
int Dit<T>::set_act_calibration(bool on) {
  int n = 0;
  impl_->for_each_slot([&](const std::string&, std::unique_ptr<Linear<T>>& s) {
    if (auto* q = dynamic_cast<StepActQuantizer*>(s.get())) {
      if (on)
        q->begin_calibration();
      else
        q->end_calibration();
      ++n;
    }
  });
  return n;
}

template <class T>
std::vector<Param<T>> Dit<T>::trainable() {
  Impl& m = *impl_;
  std::vector<Param<T>> out;
  if (m.base_trainable)
    for_each_base(cfg_, m.p, m.g, [&](const std::string& name, T* v, T* g, int64_t n, const Shape& s) {
      out.push_back({name, v, g, n, s});
    });
  if (m.train_class_embedding)
    out.push_back({"y_embd.weight", m.p.y_embd, m.g.y_embd, int64_t(cfg_.num_classes + 1) * cfg_.dim,
                   {cfg_.num_classes + 1, cfg_.dim}});
  m.for_each_slot([&](const std::string&, std::unique_ptr<Linear<T>>& s) {
    for (auto& prm : s->trainable()) out.push_back(prm);
  });
  return out;
}

template <class T>
std::vector<Param<T>> Dit<T>::state() {
  std::vector<Param<T>> out;
  impl_->for_each_slot([&](const std::string&, std::unique_ptr<Linear<T>>& s) {
    for (auto& prm : s->state()) out.push_back(prm);
  });
  return out;
}

template <class T>
void Dit<T>::zero_grad() {
  impl_->grads.zero();
  for (auto& prm : trainable()) qtune::zero_grad(prm);
}

template <class T>
int64_t Dit<T>::num_trainable() const {
  int64_t n = 0;
  for (auto& prm : const_cast<Dit*>(this)->trainable()) n += prm.numel;
  return n;
}

// A slot's trainable "<stem>.weight" (full) IS its base weight, so it is not counted twice.
template <class T>
int64_t Dit<T>::num_params() const {
  int64_t n = impl_->n_base;
  impl_->for_each_slot([&](const std::string&, std::unique_ptr<Linear<T>>& s) {
    n += s->in() * s->out();
    for (auto& prm : s->trainable())
      if (!prm.name.ends_with(".weight")) n += prm.numel;
  });
  return n;
}

template <class T>
DitFile Dit<T>::merged() const {
  Impl& m = *impl_;
  DitFile f;
  f.config = cfg_;
  f.path = "(merged dit)";
  DitBase<T> none;
  for_each_base(cfg_, m.p, none, [&](const std::string& name, T* v, T*, int64_t, const Shape& s) {
    f.tensors[name] = tensor_from(v, s);
  });
  f.act.bits = opts_.act_bits;
  m.for_each_slot([&](const std::string& stem, std::unique_ptr<Linear<T>>& s) {
    Deployed dep = s->merge();
    if (dep.weight)
      f.tensors[stem + ".weight"] = std::move(*dep.weight);
    else
      f.quantized[stem + ".weight"] = std::move(dep.planes);
    if (s->input_scale() > 0) f.act.scales[stem] = s->input_scale();
    if (const auto* q = dynamic_cast<const StepActQuantizer*>(s.get())) f.act.tables[stem] = q->table();
  });
  return f;
}

DitFile dit_init(const DitConfig& c, uint64_t seed) {
  validate(c);
  DitFile f;
  f.config = c;
  f.path = "(dit_init)";
  Rng rng(seed);
  for (const auto& [name, shape] : dit_tensor_shapes(c)) {
    Tensor t(shape);  // zero: biases, adaLN modulations, the output layer
    const bool zero = name.ends_with(".bias") || name.find("adaln") != std::string::npos || name.starts_with("output");
    if (name == "y_embd.weight" || name.starts_with("t_embd.")) {
      if (!name.ends_with(".bias"))
        for (int64_t i = 0; i < t.numel(); ++i) t.ptr()[i] = float(0.02 * rng.normal());
    } else if (!zero) {
      const bool qkv = name.find("attn_q") != std::string::npos || name.find("attn_k") != std::string::npos ||
                       name.find("attn_v") != std::string::npos;
      const double fan_out = double(shape[0]) * (qkv ? 3 : 1), fan_in = double(shape[1]);
      const float bound = float(std::sqrt(6.0 / (fan_in + fan_out)));
      for (int64_t i = 0; i < t.numel(); ++i) t.ptr()[i] = rng.uniform(-bound, bound);
    }
    f.tensors[name] = std::move(t);
  }
  return f;
}

template class Dit<float>;
template class Dit<double>;

}  // namespace qtune
