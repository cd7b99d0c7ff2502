#include "cli/adapter_file.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <set>

#include "core/error.h"
#include "io/gguf.h"
#include "io/lora_gguf.h"

namespace qtune::cli {

namespace {

const char* kRun = "qtune.run.";
const std::string kState = "qtune.state.";

std::vector<std::pair<std::string, std::string>> run_keys_of(const MethodOptions& m, uint64_t seed) {
  std::string targets;
  for (const auto& t : m.targets) targets += (targets.empty() ? "" : ",") + t;
  return {{"method", m.method},
          {"rank", std::to_string(m.rank)},
          {"alpha", fmt::format("{}", m.alpha)},
          {"bits", std::to_string(m.bits)},
          {"group", std::to_string(m.group)},
          {"symmetric", m.symmetric ? "true" : "false"},
          {"scale-search", m.scale_search},
          {"target", targets},
          {"act-bits", std::to_string(m.act_bits)},
          {"act-calib", std::to_string(m.act_calib)},
          {"lsq-grad-scale", m.lsq_grad_scale ? "true" : "false"},
          {"scale-lr", fmt::format("{}", m.scale_lr)},
          {"vmc", m.vmc},
          {"vmc-alpha", fmt::format("{}", m.vmc_alpha)},
          {"zero-free", m.zero_free ? "true" : "false"},
          {"seed", std::to_string(seed)}};
}

int to_int(const GgufFile& f, const std::string& key, const std::string& v) {
  try {
    size_t used = 0;
    int x = std::stoi(v, &used);
    if (used == v.size()) return x;
  } catch (const std::exception&) {
  }
  fail("{}: key '{}{}' holds '{}', not an integer", f.path(), kRun, key, v);
}

float to_float(const GgufFile& f, const std::string& key, const std::string& v) {
  char* end = nullptr;
  const float x = std::strtof(v.c_str(), &end);
  QT_CHECK(end && *end == '\0' && !v.empty(), "{}: key '{}{}' holds '{}', not a number", f.path(), kRun, key, v);
  return x;
}

// MethodOptions (and the seed) from qtune.run.* keys; keys that are absent keep the defaults.
MethodOptions method_from_keys(const GgufFile& f, uint64_t* seed) {
  MethodOptions m;
  auto get = [&](const std::string& k) { return f.has(kRun + k) ? f.get_str(kRun + k) : std::string(); };
  if (auto v = get("method"); !v.empty()) m.method = v;
  if (auto v = get("rank"); !v.empty()) m.rank = to_int(f, "rank", v);
  if (auto v = get("bits"); !v.empty()) m.bits = to_int(f, "bits", v);
  if (auto v = get("group"); !v.empty()) m.group = to_int(f, "group", v);
  if (auto v = get("alpha"); !v.empty()) m.alpha = to_float(f, "alpha", v);
  m.symmetric = get("symmetric") == "true";
  if (auto v = get("scale-search"); !v.empty()) m.scale_search = v;
  if (auto v = get("target"); !v.empty()) {
    m.targets.clear();
    for (size_t a = 0, b; a <= v.size(); a = b + 1) {
      b = v.find(',', a);
      if (b == std::string::npos) b = v.size();
      m.targets.push_back(v.substr(a, b - a));
    }
  }
  if (auto v = get("act-bits"); !v.empty()) m.act_bits = to_int(f, "act-bits", v);
  if (auto v = get("act-calib"); !v.empty()) m.act_calib = to_int(f, "act-calib", v);
  m.lsq_grad_scale = get("lsq-grad-scale") == "true";
  if (auto v = get("scale-lr"); !v.empty()) m.scale_lr = to_float(f, "scale-lr", v);
  if (auto v = get("vmc"); !v.empty()) m.vmc = v;
  if (auto v = get("vmc-alpha"); !v.empty()) m.vmc_alpha = to_float(f, "vmc-alpha", v);
  m.zero_free = get("zero-free") == "true";
  if (auto v = get("seed"); !v.empty()) {
    try {
      *seed = std::stoull(v);
    } catch (const std::exception&) {
      fail("{}: key '{}seed' holds '{}', not an integer", f.path(), kRun, v);
    }
  }
  return m;
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

// The qtune.state.* f32 array keys of an adapter file.
TensorMap state_from_keys(const GgufFile& f) {
  TensorMap out;
  for (const auto& [key, v] : f.metadata()) {
    if (key.rfind(kState, 0) != 0) continue;
    const std::vector<float> a = f.get_arr_f32(key);
    Tensor t({static_cast<int64_t>(a.size())});
    std::copy(a.begin(), a.end(), t.data.begin());
    out.emplace(key.substr(kState.size()), std::move(t));
  }
  return out;
}

AdapterFile read_checkpoint(const GgufFile& f) {
  AdapterFile a;
  a.kind = "checkpoint";
  a.method = method_from_keys(f, &a.seed);
  QT_CHECK(a.method.method != "full", "{}: a full fine-tuning checkpoint has no adapter", f.path());
  for (const auto& t : f.tensors()) {
    if (t.name.rfind(kState, 0) == 0) {
      a.state.emplace(t.name.substr(kState.size()), f.to_float(t));
    } else if (t.name.rfind("qtune.", 0) != 0) {
      QT_CHECK(!t.name.ends_with(".weight"), "{}: a full fine-tuning checkpoint has no adapter", f.path());
      a.adapters.emplace(t.name, f.to_float(t));
    }
  }
  QT_CHECK(!a.adapters.empty(), "{}: the checkpoint holds no adapter tensors", f.path());
  return a;
}

AdapterFile read_qtune_adapter(const GgufFile& f) {
  AdapterFile a;
  a.kind = "adapter";
  a.method = method_from_keys(f, &a.seed);
  QT_CHECK(f.has(std::string(kRun) + "method"), "{}: a qtune adapter without qtune.run.method", f.path());
  for (const auto& t : f.tensors()) {
    QT_CHECK(t.type == GgmlType::F32, "{}: adapter tensor '{}' must be F32", f.path(), t.name);
    a.adapters.emplace(t.name, f.to_float(t));
  }
  QT_CHECK(!a.adapters.empty(), "{}: the adapter holds no tensors", f.path());
  a.state = state_from_keys(f);
  return a;
}

void add_keys(GgufWriter& w, const TensorMap& state, const MethodOptions& method, uint64_t seed) {
  for (const auto& [key, value] : run_keys_of(method, seed)) w.set_str(kRun + key, value);
  for (const auto& [name, t] : state) w.set_arr_f32(kState + name, std::vector<float>(t.data.begin(), t.data.end()));
}

}  // namespace

void write_adapter(const std::string& path, const TensorMap& adapters, const TensorMap& state,
                   const MethodOptions& method, uint64_t seed) {
  GgufWriter w;
  if (is_integer_method(method.method)) {
    w.set_str("general.architecture", "llama");
    w.set_str("general.type", "adapter");
    w.set_str("adapter.type", "qtune");
    add_keys(w, state, method, seed);
    for (const auto& [name, t] : adapters) w.add_tensor(name, t, GgmlType::F32);
    w.write(path);
    return;
  }
  // save_lora_gguf first to a private temp name, then the same file plus the qtune keys to path
  // (GgufWriter renames into place), so path only ever holds a complete, annotated adapter.
  std::string tmp = fmt::format("{}.tmp.lora.{}", path, ::getpid());
  struct Cleanup {
    std::string p;
    ~Cleanup() { std::remove(p.c_str()); }
  } cleanup{tmp};
  save_lora_gguf(tmp, adapters, method.alpha);
  GgufFile lora(tmp);
  for (const auto& [key, value] : lora.metadata()) w.set(key, value);
  add_keys(w, state, method, seed);
  for (const auto& t : lora.tensors())
    w.add_raw_tensor(t.name, t.ne, t.type, std::vector<uint8_t>(t.data, t.data + t.nbytes));
  w.write(path);
}

AdapterFile read_adapter(const std::string& path) {
  GgufFile f(path);
  std::string type = f.has("general.type") ? f.get_str("general.type") : "";
  if (type == "qtune.checkpoint") return read_checkpoint(f);
  QT_CHECK(type == "adapter", "{}: not an adapter or qtune checkpoint (general.type is '{}')", path, type);
  if (f.has("adapter.type") && f.get_str("adapter.type") == "qtune") return read_qtune_adapter(f);
  LoraGguf lora = load_lora_gguf(path);
  AdapterFile a;
  a.kind = "adapter";
  a.adapters = std::move(lora.adapters);
  if (f.has(std::string(kRun) + "method")) {
    a.method = method_from_keys(f, &a.seed);
  } else {
    a.method.method = "lora";
    infer_from_tensors(a.adapters, a.method);
  }
  a.method.alpha = lora.alpha;
  a.state = state_from_keys(f);
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

void load_adapter_into(Llama& model, const AdapterFile& a, const std::string& where) {
  const size_t used = copy_into(model.trainable(), a.adapters, where, "adapter");
  QT_CHECK(used == a.adapters.size(), "{}: {} adapter tensors, but the model has {} adapter slots (wrong base model?)",
           where, a.adapters.size(), used);
  const size_t used_state = copy_into(model.state(), a.state, where, "state");
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
