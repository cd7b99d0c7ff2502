#include "cli/adapter_file.h"

#include <cmath>
#include <cstring>
#include <set>

#include "core/error.h"
#include "io/projections.h"

namespace qtune::cli {

namespace {

RunSettings settings_with_seed(const MethodOptions& m, uint64_t seed) {
  RunSettings s = settings_of(m);
  s.emplace_back("seed", std::to_string(seed));
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

void write_trained_adapter(const std::string& path, const TensorMap& adapters, const TensorMap& state,
                           const MethodOptions& method, uint64_t seed, const std::string& architecture) {
  const RunSettings run = settings_with_seed(method, seed);
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
  const std::string* seed = find_setting(a.run, "seed");
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
