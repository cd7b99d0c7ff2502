// models/llama.cpp — building a Llama from a ModelFile: slots, the one buffer of non-slot
// parameters, parameter listings and merging. Forward, backward and generation live in
// llama_forward.cpp, llama_backward.cpp and llama_generate.cpp.
#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "io/projections.h"
#include "kernels/qdot_blocks.h"
#include "models/llama.h"
#include "models/llama_impl.h"

namespace qtune {

std::unique_ptr<Linear<float>>& slot_ref(LlamaLayer& layer, int i) {
  // In the order of kProjections (io/projections.h).
  static constexpr std::unique_ptr<Linear<float>> LlamaLayer::*kSlots[] = {
      &LlamaLayer::q, &LlamaLayer::k, &LlamaLayer::v, &LlamaLayer::o, &LlamaLayer::gate, &LlamaLayer::up, &LlamaLayer::down};
  static_assert(std::size(kSlots) == kNumProjections);
  return layer.*kSlots[i];
}

namespace {

// Carves BaseTensors out of mem (shapes in llama_impl.h); returns their element count.
int64_t carve_base(const LlamaConfig& c, Buffer<float>& mem, BaseTensors& t) {
  const int64_t V = c.vocab_size, C = c.dim, L = c.n_layers;
  const int64_t n = carve(mem, {{&t.token_embd, V * C},                        // [V, C]
                                {&t.attn_norm, L * C},                         // [L, C]
                                {&t.ffn_norm, L * C},                          // [L, C]
                                {&t.output_norm, C},                           // [C]
                                {&t.output, c.tied_classifier ? 0 : V * C}});  // [V, C]
  if (c.tied_classifier) t.output = t.token_embd;  // no storage of its own
  return n;
}

Tensor tensor_from(const float* p, Shape s) {
  Tensor t(std::move(s));
  std::memcpy(t.ptr(), p, t.numel() * sizeof(float));
  return t;
}

}  // namespace

Llama::Llama(const ModelFile& mf, const MethodOptions& opts, uint64_t seed)
    : impl_(std::make_unique<Impl>()), cfg_(mf.config), opts_(opts) {
  build(mf, seed, nullptr);
}

Llama::Llama(ModelFile&& mf, const MethodOptions& opts, uint64_t seed)
    : impl_(std::make_unique<Impl>()), cfg_(mf.config), opts_(opts) {
  build(mf, seed, &mf);
  mf.tensors.clear();
  mf.quantized.clear();
  mf.lazy.clear();
  mf.source.reset();
}

// `release` (the same file as mf, or null): each weight is dropped from it once the model holds
// its own form, so the file's float copy and the model's never coexist whole. A lazy (streamed)
// file's float weights are read one at a time as their slot is built and freed after it.
void Llama::build(const ModelFile& mf, uint64_t seed, ModelFile* release) {
  const MethodOptions& opts = opts_;
  auto drop = [&](const std::string& name) {
    if (release) release_weight(*release, name);
  };
  validate_model(mf);
  validate(opts);
  Impl& m = *impl_;
  m.cfg = cfg_;
  m.ctx.seed = seed;
  // Full fine-tuning is the one method that also trains what sits outside the slots
  // (embedding, norms, classifier): every other method freezes the base by definition, so
  // this single method check decides ownership of non-slot gradients, not any math.
  m.base_trainable = opts.method == "full" && !opts.frozen;

  const int64_t C = cfg_.dim, L = cfg_.n_layers;
  m.n_base = carve_base(cfg_, m.params, m.p);
  if (m.base_trainable) carve_base(cfg_, m.grads, m.g);
  read_float_into(mf, "token_embd.weight", m.p.token_embd, cfg_.vocab_size * C);
  read_float_into(mf, "output_norm.weight", m.p.output_norm, C);
  if (!cfg_.tied_classifier) read_float_into(mf, "output.weight", m.p.output, cfg_.vocab_size * C);
  for (const char* name : {"token_embd.weight", "output.weight"}) drop(name);
  if (const auto& cb = mf.classifier_blocks; opts.frozen && cb.size() == 1 && cb[0].rows == cfg_.vocab_size &&
                                             cb[0].cols == C && kernels::qblocks_supported(cb[0])) {
    QuantMatrix blocks = release ? std::move(release->classifier_blocks[0]) : cb[0];
    if (kernels::packable(blocks))
      m.output_packed.emplace(kernels::pack_blocks(std::move(blocks)));
    else
      m.output_blocks = std::move(blocks);
  }
  if (release) release->classifier_blocks.clear();

  if (const GemmMode gemm = gemm_mode(opts); gemm.gse && method_info(opts.method).gse_gemm && !opts.frozen) {
    m.gse.emplace(gemm.spec, "output");
    m.gse_attention = opts.gemm_attention;
    // a frozen classifier is encoded once; a trained one (method full) per pass
    if (!m.base_trainable) m.output_gse.emplace(m.p.output, cfg_.vocab_size, C, gemm.spec);
  }

  m.save_gse = opts.save_act == "gse" && !opts.frozen;
  m.recompute = opts.recompute && !opts.frozen;

  Rng rng(seed);
  m.layers.resize(L);
  for (int l = 0; l < L; ++l) {
    const std::string blk = fmt::format("blk.{}.", l);
    read_float_into(mf, blk + "attn_norm.weight", m.p.attn_norm + l * C, C);
    read_float_into(mf, blk + "ffn_norm.weight", m.p.ffn_norm + l * C, C);
    for (int i = 0; i < kNumProjections; ++i) {
      slot_ref(m.layers[l], i) = make_slot(mf, projection_stem(l, i), opts, rng);
      drop(projection_stem(l, i) + ".weight");
    }
  }
}

// An inference model runs the file's weights as they are (integer planes on the integer path);
// a model being trained builds its method's slot from the float weight.
std::unique_ptr<Linear<float>> Llama::make_slot(const ModelFile& mf, const std::string& name,
                                                const MethodOptions& opts, Rng& rng) {
  const std::string wname = name + ".weight";
  if (opts.frozen) {
    auto a = mf.act_scales.find(name);
    const float act_scale = opts.act_dynamic || a == mf.act_scales.end() ? 0.0f : a->second;
    auto q = mf.quantized.find(wname);
    if (q != mf.quantized.end()) return make_inference_linear<float>(name, nullptr, &q->second, opts.act_bits, act_scale);
    if (auto t = mf.tensors.find(wname); t != mf.tensors.end())
      return make_inference_linear<float>(name, &t->second, nullptr, opts.act_bits, act_scale);
    const Tensor w = read_float(mf, wname);  // streamed: freed once the slot holds its copy
    return make_inference_linear<float>(name, &w, nullptr, opts.act_bits, act_scale);
  }
  const bool targeted = std::find(opts.targets.begin(), opts.targets.end(), target_of(name)) != opts.targets.end();
  if (auto t = mf.tensors.find(wname); t != mf.tensors.end()) return make_linear<float>(opts, name, t->second, targeted, rng);
  // streamed from disk, or dequantized from an integer base file
  return make_linear<float>(opts, name, weight_as_float(mf, wname), targeted, rng);
}

Llama::~Llama() = default;

void Llama::set_step(uint64_t micro_batch) { impl_->ctx.step = micro_batch; }

Linear<float>& Llama::slot(int layer, const std::string& target) {
  QT_CHECK(layer >= 0 && layer < cfg_.n_layers, "layer {} out of range (model has {})", layer, cfg_.n_layers);
  const int i = projection_index(target);
  QT_CHECK(i >= 0, "unknown target '{}' (valid: {})", target, fmt::join(projection_targets(), ", "));
  return *slot_ref(impl_->layers[layer], i);
}

std::vector<Param<float>> Llama::trainable() {
  Impl& m = *impl_;
  std::vector<Param<float>> out;
  const int64_t C = cfg_.dim, V = cfg_.vocab_size;
  if (m.base_trainable) {
    out.push_back({"token_embd.weight", m.p.token_embd, m.g.token_embd, V * C, {V, C}});
    for (int l = 0; l < cfg_.n_layers; ++l) {
      out.push_back({fmt::format("blk.{}.attn_norm.weight", l), m.p.attn_norm + l * C, m.g.attn_norm + l * C, C, {C}});
      out.push_back({fmt::format("blk.{}.ffn_norm.weight", l), m.p.ffn_norm + l * C, m.g.ffn_norm + l * C, C, {C}});
    }
    out.push_back({"output_norm.weight", m.p.output_norm, m.g.output_norm, C, {C}});
    if (!cfg_.tied_classifier) out.push_back({"output.weight", m.p.output, m.g.output, V * C, {V, C}});
  }
  for (auto& layer : m.layers)
    for (int i = 0; i < kNumProjections; ++i)
      for (auto& prm : slot_ref(layer, i)->trainable()) out.push_back(prm);
  return out;
}

std::vector<Param<float>> Llama::state() {
  std::vector<Param<float>> out;
  for (auto& layer : impl_->layers)
    for (int i = 0; i < kNumProjections; ++i)
      for (auto& prm : slot_ref(layer, i)->state()) out.push_back(prm);
  return out;
}

std::map<std::string, double> Llama::stats() const {
  std::map<std::string, double> out;
  for (auto& layer : impl_->layers)
    for (int i = 0; i < kNumProjections; ++i)
      for (const auto& [k, v] : slot_ref(const_cast<LlamaLayer&>(layer), i)->stats()) out[k] += v;
  return out;
}

void Llama::zero_grad() {
  impl_->grads.zero();
  for (auto& prm : trainable()) qtune::zero_grad(prm);
}

int64_t Llama::num_trainable() const {
  int64_t n = 0;
  for (auto& prm : const_cast<Llama*>(this)->trainable()) n += prm.numel;
  return n;
}

// Base parameters plus adapter parameters. A slot's trainable "<stem>.weight" (dense, full
// fine-tuning) IS its base weight, so it is not counted twice.
int64_t Llama::num_params() const {
  int64_t n = impl_->n_base;
  for (auto& layer : impl_->layers)
    for (int i = 0; i < kNumProjections; ++i) {
      auto& s = *slot_ref(layer, i);
      n += s.in() * s.out();
      for (auto& prm : s.trainable())
        if (!prm.name.ends_with(".weight")) n += prm.numel;
    }
  return n;
}

int64_t Llama::weight_bytes() const {
  // the float base, and decoding's block copy of a quantized classifier (Impl::output_blocks)
  int64_t n = impl_->n_base * int64_t(sizeof(float)) + (impl_->output_blocks ? impl_->output_blocks->bytes() : 0) +
              (impl_->output_packed ? impl_->output_packed->bytes() : 0);
  for (auto& layer : impl_->layers)
    for (int i = 0; i < kNumProjections; ++i) n += slot_ref(layer, i)->weight_bytes();
  return n;
}

int64_t Llama::adapter_bytes() const {
  int64_t n = 0;
  for (auto& layer : impl_->layers)
    for (int i = 0; i < kNumProjections; ++i) n += slot_ref(layer, i)->adapter_bytes();
  return n;
}

ModelFile Llama::merged(int64_t* inexact) const {
  const Impl& m = *impl_;
  const int64_t C = cfg_.dim, V = cfg_.vocab_size;
  ModelFile mf;
  mf.config = cfg_;
  mf.format = "merged";
  mf.act_bits = opts_.act_bits;
  if (inexact) *inexact = 0;
  mf.tensors["token_embd.weight"] = tensor_from(m.p.token_embd, {V, C});
  mf.tensors["output_norm.weight"] = tensor_from(m.p.output_norm, {C});
  if (!cfg_.tied_classifier) mf.tensors["output.weight"] = tensor_from(m.p.output, {V, C});
  for (int l = 0; l < cfg_.n_layers; ++l) {
    const std::string blk = fmt::format("blk.{}.", l);
    mf.tensors[blk + "attn_norm.weight"] = tensor_from(m.p.attn_norm + l * C, {C});
    mf.tensors[blk + "ffn_norm.weight"] = tensor_from(m.p.ffn_norm + l * C, {C});
    for (int i = 0; i < kNumProjections; ++i) {
      auto& s = *slot_ref(const_cast<LlamaLayer&>(m.layers[l]), i);
      const std::string stem = projection_stem(l, i);
      Deployed dep = s.merge();
      if (dep.weight) {
        QT_ASSERT(dep.weight->numel() == s.out() * s.in());
        mf.tensors[stem + ".weight"] = std::move(*dep.weight);
      } else {
        QT_ASSERT(!dep.planes.empty());
        mf.quantized[stem + ".weight"] = std::move(dep.planes);
      }
      if (inexact) *inexact += dep.inexact;
      if (s.input_scale() > 0) mf.act_scales[stem] = s.input_scale();
    }
  }
  return mf;
}

// Adapter parameters are the slots' trainable tensors that are not the base weight itself
// ("<stem>.lora_a", "<stem>.lora_b", ...); values are copied.
TensorMap Llama::adapter_tensors() {
  TensorMap out;
  for (auto& layer : impl_->layers)
    for (int i = 0; i < kNumProjections; ++i)
      for (auto& prm : slot_ref(layer, i)->trainable()) {
        if (prm.name.ends_with(".weight")) continue;
        out[prm.name] = tensor_from(prm.value, prm.shape);
      }
  return out;
}

}  // namespace qtune
