#include "cli/adapter_file.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "core/file.h"
#include "core/hash.h"
#include "io/projections.h"

namespace qtune::cli {

namespace {

// Run settings that are not method options (options_from_settings ignores them).
constexpr const char* kSeed = "seed";
constexpr const char* kModelFile = "model-file";
constexpr const char* kModelFingerprint = "model-fingerprint";  // as checkpoints record it

RunSettings settings_with_seed(const MethodOptions& m, uint64_t seed, const BaseModelId& base) {
  RunSettings s = settings_of(m);
  s.emplace_back(kSeed, std::to_string(seed));
  if (!base.file.empty()) s.emplace_back(kModelFile, base.file);
  if (!base.fingerprint.empty()) s.emplace_back(kModelFingerprint, base.fingerprint);
  return s;
}

// Rank and targets of a LoRA file without qtune keys, from its tensors.
void infer_from_tensors(const TensorMap& adapters, MethodOptions& m) {
  std::set<std::string> targets;
  for (const auto& [name, t] : adapters) {
    if (name.ends_with(".lora_a")) m.rank = static_cast<int>(t.rows());
    targets.insert(target_of(name.substr(0, name.rfind('.'))));
  }
  m.targets.assign(targets.begin(), targets.end());
}

}  // namespace

BaseModelId base_model_id(const std::string& path) {
  return {std::filesystem::path(path).filename().string(), fingerprint_hex(fingerprint_file(path))};
}

void write_trained_adapter(const std::string& path, const TensorMap& adapters, const TensorMap& state,
                           const MethodOptions& method, uint64_t seed, const BaseModelId& base,
                           const std::string& architecture) {
  const RunSettings run = settings_with_seed(method, seed, base);
  // a DiT adapter never goes to llama.cpp, and may hold the class embedding: qtune's format
  if (method_info(method.method).lora_scale && architecture == "llama")
    write_lora_adapter(path, adapters, state, run, method.alpha, architecture);
  else
    write_qtune_adapter(path, adapters, state, run, architecture);
}

TrainedAdapter read_trained_adapter(const std::string& path) {
  TrainedAdapter a;
  static_cast<AdapterFile&>(a) = read_adapter(path);
  if (a.run.empty()) {  // a llama.cpp LoRA made elsewhere
    QT_ASSERT(a.kind == "lora");
    a.method.method = "lora";
    infer_from_tensors(a.adapters, a.method);
    a.method.alpha = a.lora_alpha;
    try {
      validate(a.method);
    } catch (const Error& e) {
      fail("{}: {}", path, e.what());
    }
    return a;
  }
  a.method = options_from_settings(a.run, path);
  if (const std::string* f = find_setting(a.run, kModelFile)) a.base.file = *f;
  if (const std::string* f = find_setting(a.run, kModelFingerprint)) a.base.fingerprint = *f;
  const std::string* seed = find_setting(a.run, kSeed);
  QT_CHECK(seed, "{}: has no run setting 'seed' (qtune.run.seed)", path);
  try {
    size_t used = 0;
    a.seed = std::stoull(*seed, &used);
    QT_CHECK(used == seed->size(), "");
  } catch (const std::exception&) {
    fail("{}: run setting 'seed' holds '{}', not an integer", path, *seed);
  }
  // A LoRA file's alpha is adapter.lora.alpha: llama.cpp applies that one, so it wins.
  if (a.kind == "lora") a.method.alpha = a.lora_alpha;
  QT_CHECK(std::isfinite(a.method.alpha) && a.method.alpha > 0, "{}: adapter.lora.alpha is {} (must be a number > 0)",
           path, a.method.alpha);
  return a;
}

namespace {

// Copies `from` into params of the same name; returns how many were used.
size_t copy_into(const std::vector<Param<float>>& params, const TensorMap& from, const std::string& where,
                 const char* what) {
  size_t used = 0;
  for (const auto& p : params) {
    auto it = from.find(p.name);
    QT_CHECK(it != from.end(), "{}: {} tensor '{}' is missing (was it trained with other --target or --act-bits?)",
             where, what, p.name);
    QT_CHECK(it->second.numel() == p.numel && (it->second.shape == p.shape || it->second.shape.size() == 1),
             "{}: tensor '{}' has shape {}, the model needs {} (shape mismatch)", where, p.name,
             shape_str(it->second.shape), shape_str(p.shape));
    std::memcpy(p.value, it->second.ptr(), p.numel * sizeof(float));
    ++used;
  }
  return used;
}

}  // namespace

void load_adapter_into(Llama& model, const TrainedAdapter& a, const std::string& where) {
  load_adapter_params(model.trainable(), model.state(), a, where);
}

void load_adapter_params(const std::vector<Param<float>>& trainable, const std::vector<Param<float>>& state,
                         const TrainedAdapter& a, const std::string& where) {
  const size_t used = copy_into(trainable, a.adapters, where, "adapter");
  QT_CHECK(used == a.adapters.size(), "{}: {} adapter tensors, but the model has {} adapter slots (wrong base model?)",
           where, a.adapters.size(), used);
  const size_t used_state = copy_into(state, a.state, where, "state");
  QT_CHECK(used_state == a.state.size(), "{}: {} state tensors, but the model has {} (different --act-bits?)", where,
           a.state.size(), used_state);
}

bool base_is_quantized_model(const std::string& method) {
  const MethodInfo& m = method_info(method);
  return m.quantized_base && !m.intlora;
}

std::string quantizer_str(const QuantSpec& spec) {
  return fmt::format("{}-bit {}, {}, {} range", spec.bits,
                     spec.zero_free ? "zero-free" : spec.symmetric ? "symmetric" : "asymmetric",
                     spec.group ? fmt::format("groups of {}", spec.group) : std::string("per row"),
                     spec.mse_search ? "MSE-searched" : "min/max");
}

std::string base_needed(const TrainedAdapter& a, const std::string& adapter) {
  const BaseModelId& b = a.base;
  const std::string on = b.file.empty() && b.fingerprint.empty()
                             ? "an unrecorded model (the adapter does not say which)"
                         : b.file.empty() ? fmt::format("the model with fingerprint {}", b.fingerprint)
                         : b.fingerprint.empty() ? b.file
                                                 : fmt::format("{} (fingerprint {})", b.file, b.fingerprint);
  const std::string& m = a.method.method;
  if (!method_info(m).quantized_base)
    return fmt::format("trained on the float base {}: it applies to that model as it is", on);
  const std::string q = quantizer_str(base_quant_spec(a.method));
  if (!base_is_quantized_model(m))
    return fmt::format("trained on {} with W − R quantized to {} (docs/METHODS.md §4.2): use `qtune merge`", on, q);
  const std::string model_arg = !b.file.empty() ? b.file : "MODEL";
  return fmt::format("trained on {} quantized to {}; llama.cpp --lora applies it to whatever base it is given: give it "
                     "the base written by `qtune quantize --model {} --out BASE.gguf --like {}`",
                     on, q, model_arg, adapter);
}

TensorMap state_tensors(Llama& model) {
  TensorMap out;
  for (const auto& p : model.state()) {
    Tensor t(p.shape);
    std::memcpy(t.ptr(), p.value, p.numel * sizeof(float));
    out.emplace(p.name, std::move(t));
  }
  return out;
}

}  // namespace qtune::cli
