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

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<std::pair<std::string, std::string>> run_keys_of(const MethodOptions& m) {
  std::string targets;
  for (const auto& t : m.targets) targets += (targets.empty() ? "" : ",") + t;
  return {{"method", m.method},
          {"rank", std::to_string(m.rank)},
          {"alpha", fmt::format("{}", m.alpha)},
          {"bits", std::to_string(m.bits)},
          {"group", std::to_string(m.group)},
          {"symmetric", m.symmetric ? "true" : "false"},
          {"scale-search", m.scale_search},
          {"target", targets}};
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

// MethodOptions from qtune.run.* keys; keys that are absent keep the defaults.
MethodOptions method_from_keys(const GgufFile& f) {
  MethodOptions m;
  auto get = [&](const std::string& k) { return f.has(kRun + k) ? f.get_str(kRun + k) : std::string(); };
  if (auto v = get("method"); !v.empty()) m.method = v;
  if (auto v = get("rank"); !v.empty()) m.rank = to_int(f, "rank", v);
  if (auto v = get("bits"); !v.empty()) m.bits = to_int(f, "bits", v);
  if (auto v = get("group"); !v.empty()) m.group = to_int(f, "group", v);
  if (auto v = get("alpha"); !v.empty()) m.alpha = std::strtof(v.c_str(), nullptr);
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
  return m;
}

// Rank and targets of a LoRA file without qtune keys, from its tensors.
void infer_from_tensors(const TensorMap& adapters, MethodOptions& m) {
  std::set<std::string> targets;
  for (const auto& [name, t] : adapters) {
    if (ends_with(name, ".lora_a")) m.rank = static_cast<int>(t.rows());
    targets.insert(target_of(name.substr(0, name.rfind('.'))));
  }
  m.targets.assign(targets.begin(), targets.end());
}

AdapterFile read_checkpoint(const GgufFile& f) {
  AdapterFile a;
  a.kind = "checkpoint";
  a.method = method_from_keys(f);
  QT_CHECK(a.method.method != "full", "{}: a full fine-tuning checkpoint has no LoRA adapter", f.path());
  for (const auto& t : f.tensors())
    if (ends_with(t.name, ".lora_a") || ends_with(t.name, ".lora_b"))
      if (t.name.rfind("qtune.", 0) != 0) a.adapters.emplace(t.name, f.to_float(t));
  QT_CHECK(!a.adapters.empty(), "{}: the checkpoint holds no .lora_a/.lora_b tensors", f.path());
  return a;
}

}  // namespace

void write_adapter(const std::string& path, const TensorMap& adapters, const MethodOptions& method) {
  // save_lora_gguf first to a private temp name, then the same file plus qtune.run.* keys to
  // path (GgufWriter renames into place), so path only ever holds a complete, annotated adapter.
  std::string tmp = fmt::format("{}.tmp.lora.{}", path, ::getpid());
  struct Cleanup {
    std::string p;
    ~Cleanup() { std::remove(p.c_str()); }
  } cleanup{tmp};
  save_lora_gguf(tmp, adapters, method.alpha);
  GgufFile lora(tmp);
  GgufWriter w;
  for (const auto& [key, value] : lora.metadata()) w.set(key, value);
  for (const auto& [key, value] : run_keys_of(method)) w.set_str(kRun + key, value);
  for (const auto& t : lora.tensors())
    w.add_raw_tensor(t.name, t.ne, t.type, std::vector<uint8_t>(t.data, t.data + t.nbytes));
  w.write(path);
}

AdapterFile read_adapter(const std::string& path) {
  GgufFile f(path);
  std::string type = f.has("general.type") ? f.get_str("general.type") : "";
  if (type == "qtune.checkpoint") return read_checkpoint(f);
  QT_CHECK(type == "adapter", "{}: not a LoRA adapter or qtune checkpoint (general.type is '{}')", path, type);
  LoraGguf lora = load_lora_gguf(path);
  AdapterFile a;
  a.kind = "adapter";
  a.adapters = std::move(lora.adapters);
  if (f.has(std::string(kRun) + "method")) {
    a.method = method_from_keys(f);
  } else {
    a.method.method = "lora";
    infer_from_tensors(a.adapters, a.method);
  }
  a.method.alpha = lora.alpha;
  return a;
}

void load_adapter_into(Llama& model, const TensorMap& adapters, const std::string& where) {
  size_t used = 0;
  for (const auto& p : model.trainable()) {
    auto it = adapters.find(p.name);
    QT_CHECK(it != adapters.end(), "{}: tensor '{}' is missing (was it trained with other --target?)", where, p.name);
    QT_CHECK(it->second.shape == p.shape, "{}: tensor '{}' has shape {}, the model needs {} (shape mismatch)", where,
             p.name, shape_str(it->second.shape), shape_str(p.shape));
    std::memcpy(p.value, it->second.ptr(), p.numel * sizeof(float));
    ++used;
  }
  QT_CHECK(used == adapters.size(), "{}: {} adapter tensors, but the model has {} adapter slots (wrong base model?)",
           where, adapters.size(), used);
}

}  // namespace qtune::cli
