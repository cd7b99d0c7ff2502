#include "io/adapter_file.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "io/gguf.h"
#include "io/lora_gguf.h"

namespace qtune {

namespace {

const std::string kRun = "qtune.run.", kState = "qtune.state.";
constexpr const char* kCheckpointType = "qtune.checkpoint";  // train/checkpoint.h

AdapterFile read_checkpoint(const GgufFile& f) {
  AdapterFile a;
  a.kind = "checkpoint";
  a.run = get_run_settings(f);
  const std::string* method = find_setting(a.run, "method");
  QT_CHECK(!method || *method != "full", "{}: a full fine-tuning checkpoint has no adapter", f.path());
  for (const auto& t : f.tensors())
    if (!t.name.starts_with("qtune.")) a.adapters.emplace(t.name, f.to_float(t));  // not adam_m/v
  QT_CHECK(!a.adapters.empty(), "{}: the checkpoint holds no adapter tensors", f.path());
  a.state = get_state(f);
  return a;
}

AdapterFile read_qtune_adapter(const GgufFile& f) {
  AdapterFile a;
  a.kind = "qtune";
  a.run = get_run_settings(f);
  QT_CHECK(find_setting(a.run, "method"), "{}: a qtune adapter without {}method", f.path(), kRun);
  for (const auto& t : f.tensors()) {
    QT_CHECK(t.type == GgmlType::F32, "{}: adapter tensor '{}' must be F32", f.path(), t.name);
    a.adapters.emplace(t.name, f.to_float(t));
  }
  QT_CHECK(!a.adapters.empty(), "{}: the adapter holds no tensors", f.path());
  a.state = get_state(f);
  return a;
}

}  // namespace

const std::string* find_setting(const RunSettings& s, const std::string& name) {
  for (const auto& [k, v] : s)
    if (k == name) return &v;
  return nullptr;
}

void put_run_settings(GgufWriter& w, const RunSettings& s) {
  for (const auto& [k, v] : s) w.set_str(kRun + k, v);
}

RunSettings get_run_settings(const GgufFile& f) {
  RunSettings s;
  for (const auto& [key, v] : f.metadata())
    if (key.starts_with(kRun)) s.emplace_back(key.substr(kRun.size()), f.get_str(key));
  return s;
}

void put_state(GgufWriter& w, const TensorMap& state) {
  for (const auto& [name, t] : state) w.set_arr_f32(kState + name, std::vector<float>(t.data.begin(), t.data.end()));
}

TensorMap get_state(const GgufFile& f) {
  TensorMap out;
  for (const auto& [key, v] : f.metadata()) {
    if (!key.starts_with(kState)) continue;
    const std::vector<float> a = f.get_arr_f32(key);
    Tensor t({static_cast<int64_t>(a.size())});
    std::copy(a.begin(), a.end(), t.data.begin());
    out.emplace(key.substr(kState.size()), std::move(t));
  }
  return out;
}

void write_lora_adapter(const std::string& path, const TensorMap& adapters, const TensorMap& state,
                        const RunSettings& run, float alpha, const std::string& architecture) {
  GgufWriter w;
  add_lora_gguf(w, adapters, alpha, path, architecture);
  put_run_settings(w, run);
  put_state(w, state);
  w.write(path);
}

void write_qtune_adapter(const std::string& path, const TensorMap& adapters, const TensorMap& state,
                         const RunSettings& run, const std::string& architecture) {
  GgufWriter w;
  w.set_str("general.architecture", architecture);
  w.set_str("general.type", "adapter");
  w.set_str("adapter.type", "qtune");
  put_run_settings(w, run);
  put_state(w, state);
  for (const auto& [name, t] : adapters) w.add_tensor(name, t, GgmlType::F32);
  w.write(path);
}

namespace {

AdapterFile read_any_adapter(const GgufFile& f) {
  const std::string& path = f.path();
  const std::string type = f.has("general.type") ? f.get_str("general.type") : "";
  if (type == kCheckpointType) return read_checkpoint(f);
  QT_CHECK(type == "adapter", "{}: not an adapter or qtune checkpoint (general.type is '{}')", path, excerpt(type));
  if (f.has("adapter.type") && f.get_str("adapter.type") == "qtune") return read_qtune_adapter(f);
  LoraGguf lora = load_lora_gguf(f);
  AdapterFile a;
  a.kind = "lora";
  a.adapters = std::move(lora.adapters);
  QT_CHECK(!a.adapters.empty(), "{}: the LoRA adapter holds no tensors", path);
  a.lora_alpha = lora.alpha;
  a.run = get_run_settings(f);
  a.state = get_state(f);
  return a;
}

}  // namespace

AdapterFile read_adapter(const std::string& path) {
  GgufFile f(path);
  AdapterFile a = read_any_adapter(f);
  if (a.kind != "checkpoint" && f.has("general.architecture")) a.architecture = f.get_str("general.architecture");
  QT_CHECK(a.architecture == "llama" || a.architecture == "dit", "{}: an adapter for a '{}' model (qtune adapts llama "
           "and dit)", path, excerpt(a.architecture));
  // A NaN in an adapter would turn every merged weight it touches into NaN (check_finite).
  QT_CHECK(std::isfinite(a.lora_alpha), "{}: key 'adapter.lora.alpha': {} is not finite", path, a.lora_alpha);
  for (const auto& [name, t] : a.adapters) check_finite(path, name, t);
  for (const auto& [name, t] : a.state) {
    const int64_t i = first_non_finite(t.ptr(), t.numel());
    QT_CHECK(i < 0, "{}: key '{}{}': value [{}] is {} (must be finite)", path, kState, excerpt(name), i,
             t.data[size_t(std::max<int64_t>(i, 0))]);
  }
  return a;
}

}  // namespace qtune
