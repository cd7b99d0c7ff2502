#include "io/peft_adapter.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/file.h"
#include "io/hf_layout.h"
#include "io/projections.h"
#include "io/safetensors.h"

namespace qtune {

namespace {

using nlohmann::json;

const char* const kConfigName = "adapter_config.json";
const char* const kWeightsName = "adapter_model.safetensors";
const std::string kPrefix = "base_model.model.";  // PeftModel → LlamaForCausalLM → its .model

bool permuted_rows(int slot) { return slot == 0 || slot == 1; }  // q_proj, k_proj (io/hf_layout.h)

// "base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight"
std::string peft_name(int layer, int slot, char ab) {
  return fmt::format("{}model.layers.{}.{}.lora_{}.weight", kPrefix, layer, hf_projection_module(slot), ab);
}

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// "out/" → "out": the temp folder is a sibling ("out.tmp.<pid>"), not a child.
std::string without_trailing_slash(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

std::string folder_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// ---- writing -------------------------------------------------------------------------------

std::string config_text(const PeftLora& a) {
  json targets = json::array();
  for (const auto& t : a.targets) targets.push_back(hf_projection_short(projection_index(t)));
  // An integral alpha is written as an integer, as PEFT's own configs have it; any other float
  // as the shortest decimal that reads back as the same double (so the same float).
  json alpha = std::floor(a.alpha) == a.alpha && std::fabs(a.alpha) < 1e9f ? json(int64_t(a.alpha))
                                                                            : json(double(a.alpha));
  nlohmann::ordered_json j = {
      {"peft_type", "LORA"},
      {"task_type", "CAUSAL_LM"},
      {"base_model_name_or_path", a.base_model},
      {"r", a.rank},
      {"lora_alpha", alpha},
      {"target_modules", targets},
      {"lora_dropout", 0.0},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"use_rslora", false},
      {"use_dora", false},
      {"modules_to_save", nullptr},
      {"rank_pattern", json::object()},
      {"alpha_pattern", json::object()},
      {"init_lora_weights", true},
      {"inference_mode", true},
  };
  return j.dump(2) + "\n";
}

// Removes what a failed export left in its temp folder.
struct TempFolder {
  std::string path;
  bool keep = false;
  ~TempFolder() {
    if (keep) return;
    for (const char* f : {kConfigName, kWeightsName}) std::remove((path + "/" + f).c_str());
    ::rmdir(path.c_str());
  }
};

void write_folder(const std::string& dir, const std::vector<SafetensorsEntry>& tensors, const std::string& config) {
  const bool exists = is_dir(dir);
  struct stat st {};
  QT_CHECK(exists || ::stat(dir.c_str(), &st) != 0, "{}: cannot write the PEFT adapter: it exists and is {}, not a "
           "directory", dir, file_kind(st.st_mode));
  TempFolder tmp{dir + ".tmp." + std::to_string(::getpid())};
  TempFolder{tmp.path};  // a stale one of an earlier process with this pid
  QT_CHECK(::mkdir(tmp.path.c_str(), 0755) == 0, "{}: cannot create '{}': {}", dir, tmp.path, std::strerror(errno));
  write_safetensors(tmp.path + "/" + kWeightsName, tensors, {{"format", "pt"}});
  write_text_file_atomic(tmp.path + "/" + kConfigName, config);
  if (!exists) {
    QT_CHECK(::rename(tmp.path.c_str(), dir.c_str()) == 0, "{}: cannot rename '{}' to it: {}", dir, tmp.path,
             std::strerror(errno));
    tmp.keep = true;
    return;
  }
  // An existing folder keeps its other files (a README, a tokenizer): the weights go in first and
  // the config last, each by one rename.
  for (const char* f : {kWeightsName, kConfigName}) {
    const std::string from = tmp.path + "/" + f, to = dir + "/" + f;
    QT_CHECK(::rename(from.c_str(), to.c_str()) == 0, "{}: cannot write {}: {}", dir, to, std::strerror(errno));
  }
}

// ---- reading -------------------------------------------------------------------------------

const json* field(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

bool flag(const json& j, const char* key, const std::string& path) {
  const json* v = field(j, key);
  if (!v) return false;
  QT_CHECK(v->is_boolean(), "{}: {} is {}, not true or false", path, key, excerpt(v->dump()));
  return v->get<bool>();
}

bool empty_or_null(const json& j, const char* key) {
  const json* v = field(j, key);
  return !v || ((v->is_object() || v->is_array()) && v->empty());
}

std::vector<std::string> targets_of(const json& j, const std::string& path) {
  const json* v = field(j, "target_modules");
  QT_CHECK(v, "{}: has no target_modules", path);
  std::set<int> slots;
  if (v->is_string()) {
    QT_CHECK(*v == "all-linear", "{}: target_modules is the pattern {}: qtune reads a list of module names "
             "(q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj) or \"all-linear\"", path,
             excerpt(v->dump()));
    for (int i = 0; i < kNumProjections; ++i) slots.insert(i);
  } else {
    QT_CHECK(v->is_array() && !v->empty(), "{}: target_modules must be a non-empty list of module names", path);
    for (const json& m : *v) {
      QT_CHECK(m.is_string(), "{}: target_modules holds {}, not a module name", path, excerpt(m.dump()));
      const std::string name = m.get<std::string>();
      int slot = hf_projection_slot(name);
      for (int i = 0; i < kNumProjections && slot < 0; ++i)
        if (name == hf_projection_module(i)) slot = i;  // "self_attn.q_proj": PEFT matches name suffixes
      QT_CHECK(slot >= 0, "{}: target_modules: '{}' is not a LLaMA projection qtune adapts (q_proj, k_proj, "
               "v_proj, o_proj, gate_proj, up_proj, down_proj)", path, excerpt(name));
      slots.insert(slot);
    }
  }
  std::vector<std::string> out;
  for (int s : slots) out.push_back(kProjections[size_t(s)].target);
  return out;
}

// Every option of PEFT's LoraConfig that changes what the adapter computes is either applied
// (r, lora_alpha, use_rslora, target_modules) or refused; the rest (lora_dropout, init_lora_weights,
// task_type, revision, ...) do not change the adapted weights.
PeftLora config_from_json(const json& j, const std::string& path) {
  QT_CHECK(j.is_object(), "{}: not a PEFT adapter config (a JSON object)", path);
  const json* type = field(j, "peft_type");
  QT_CHECK(type && type->is_string() && *type == "LORA", "{}: peft_type is {}: qtune reads LoRA adapters only", path,
           type ? excerpt(type->dump()) : std::string("missing"));
  QT_CHECK(!flag(j, "use_dora", path), "{}: use_dora is true: a DoRA adapter rescales each weight's columns, "
           "which qtune's lora cannot train", path);
  QT_CHECK(!flag(j, "fan_in_fan_out", path), "{}: fan_in_fan_out is true (Conv1D weights stored transposed): not a "
           "LLaMA adapter", path);
  QT_CHECK(!flag(j, "lora_bias", path), "{}: lora_bias is true: qtune's lora has no bias on B", path);
  const json* bias = field(j, "bias");
  QT_CHECK(!bias || *bias == "none", "{}: bias is {}: qtune trains no biases (only \"none\" is supported)", path,
           bias ? excerpt(bias->dump()) : "");
  QT_CHECK(empty_or_null(j, "modules_to_save"), "{}: modules_to_save is {}: the adapter also replaces whole "
           "modules, which qtune cannot load", path, excerpt(j["modules_to_save"].dump()));
  for (const char* k : {"rank_pattern", "alpha_pattern"})
    QT_CHECK(empty_or_null(j, k), "{}: {} is not empty: qtune gives every module the same r and lora_alpha", path, k);
  QT_CHECK(empty_or_null(j, "layers_to_transform"), "{}: layers_to_transform is set: qtune adapts every layer",
           path);

  PeftLora a;
  const json* r = field(j, "r");
  QT_CHECK(r && r->is_number_integer() && *r >= 1 && *r <= (1 << 20), "{}: r is {}, not a rank (an integer >= 1)",
           path, r ? excerpt(r->dump()) : std::string("missing"));
  a.rank = r->get<int>();
  const json* alpha = field(j, "lora_alpha");
  QT_CHECK(alpha && alpha->is_number() && std::isfinite(alpha->get<double>()) && alpha->get<double>() > 0,
           "{}: lora_alpha is {}, not a number > 0", path, alpha ? excerpt(alpha->dump()) : std::string("missing"));
  a.alpha = alpha->get<float>();
  a.rslora = flag(j, "use_rslora", path);
  if (a.rslora)  // scale lora_alpha/√r = (lora_alpha·√r)/r
    a.alpha = static_cast<float>(alpha->get<double>() * std::sqrt(double(a.rank)));
  a.targets = targets_of(j, path);
  if (const json* base = field(j, "base_model_name_or_path"); base && base->is_string()) a.base_model = *base;
  return a;
}

// The tensors of the safetensors file under qtune's names (not yet un-permuted); names that are
// not a lora_A/lora_B of a target in the base's layers are refused here, by their file name.
void read_tensors(const SafetensorsFile& f, PeftLora& a, const LlamaConfig& base) {
  const std::string& path = f.path();
  const std::set<std::string> targets(a.targets.begin(), a.targets.end());
  for (const SafetensorsTensor& t : f.tensors()) {
    const std::string& name = t.name;
    std::string ab;
    for (const char* s : {"A", "B"})
      if (name.ends_with(std::string(".lora_") + s + ".weight")) ab = s;
    std::optional<std::string> gguf;
    if (name.starts_with(kPrefix) && !ab.empty() && name.size() > kPrefix.size() + 14)
      gguf = gguf_name_of_hf(name.substr(kPrefix.size(), name.size() - kPrefix.size() - 14) + ".weight");
    QT_CHECK(gguf && is_projection_name(*gguf), "{}: tensor '{}' is not the lora_A or lora_B of a LLaMA projection "
             "(base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight, ...)", path, excerpt(name));
    const int layer = std::stoi(gguf->substr(4));
    QT_CHECK(layer < base.n_layers, "{}: tensor '{}': the base model has {} layers", path, excerpt(name),
             base.n_layers);
    QT_CHECK(targets.count(target_of(*gguf)), "{}: tensor '{}' adapts {}, which is not in target_modules of {}",
             path, excerpt(name), hf_projection_short(projection_of(*gguf)), kConfigName);
    const std::string stem = gguf->substr(0, gguf->size() - 7);  // minus ".weight"
    Tensor v = f.to_float(name);
    check_finite(path, name, v);
    a.adapters.emplace(stem + (ab == "A" ? ".lora_a" : ".lora_b"), std::move(v));
  }
}

}  // namespace

void check_peft_lora(const PeftLora& a, const LlamaConfig& base, const std::string& where) {
  QT_CHECK(a.rank >= 1, "{}: rank {} (must be >= 1)", where, a.rank);
  QT_CHECK(std::isfinite(a.alpha) && a.alpha > 0, "{}: alpha {} (must be a number > 0)", where, a.alpha);
  QT_CHECK(!a.targets.empty(), "{}: no target modules", where);
  std::map<std::string, Shape> weights;
  for (const TensorSpec& s : model_tensor_specs(base)) weights.emplace(s.name, s.shape);
  size_t expected = 0;
  for (const std::string& target : a.targets) {
    const int slot = projection_index(target);
    QT_CHECK(slot >= 0, "{}: unknown target '{}'", where, excerpt(target));
    for (int l = 0; l < base.n_layers; ++l) {
      const std::string stem = projection_stem(l, slot);
      const Shape& w = weights.at(stem + ".weight");
      for (const auto& [suffix, shape] : {std::pair{".lora_a", Shape{a.rank, w[1]}}, {".lora_b", {w[0], a.rank}}}) {
        auto it = a.adapters.find(stem + suffix);
        const char ab = suffix[6] == 'a' ? 'A' : 'B';
        QT_CHECK(it != a.adapters.end(), "{}: tensor {} is missing (lora_{} of layer {} {}, a target)", where,
                 peft_name(l, slot, ab), ab, l, hf_projection_short(slot));
        QT_CHECK(it->second.shape == shape, "{}: {} has shape {}, the base model needs {} (r = {})", where,
                 peft_name(l, slot, ab), shape_str(it->second.shape), shape_str(shape), a.rank);
        ++expected;
      }
    }
  }
  if (a.adapters.size() != expected)
    for (const auto& [name, t] : a.adapters) {
      const std::string stem = name.substr(0, name.rfind('.'));
      const bool known = (name.ends_with(".lora_a") || name.ends_with(".lora_b")) && weights.count(stem + ".weight") &&
                         std::count(a.targets.begin(), a.targets.end(), target_of(stem));
      QT_CHECK(known, "{}: tensor '{}' is not the lora_a/lora_b of a target ({}) in layers 0..{}", where,
               excerpt(name), fmt::join(a.targets, ","), base.n_layers - 1);
    }
}

void write_peft_adapter(const std::string& dir_given, const PeftLora& a, const LlamaConfig& base) {
  const std::string dir = without_trailing_slash(dir_given);
  check_peft_lora(a, base, dir);
  std::vector<Tensor> permuted;  // q/k lora_B in the HF row order
  permuted.reserve(size_t(2 * base.n_layers));
  std::vector<SafetensorsEntry> entries;
  for (int l = 0; l < base.n_layers; ++l)
    for (const std::string& target : a.targets) {
      const int slot = projection_index(target);
      const std::string stem = projection_stem(l, slot);
      const Tensor& A = a.adapters.at(stem + ".lora_a");
      const Tensor* B = &a.adapters.at(stem + ".lora_b");
      if (permuted_rows(slot)) {
        Tensor& p = permuted.emplace_back(B->shape);
        meta_to_hf_rows(B->ptr(), p.ptr(), B->rows(), B->cols(), base.head_dim());
        B = &p;
      }
      entries.push_back({peft_name(l, slot, 'A'), A.shape, A.ptr(), SafetensorsDtype::F32});
      entries.push_back({peft_name(l, slot, 'B'), B->shape, B->ptr(), SafetensorsDtype::F32});
    }
  write_folder(dir, entries, config_text(a));
}

std::string peft_config_path(const std::string& path) {
  return is_dir(path) ? without_trailing_slash(path) + "/" + kConfigName : path;
}

PeftLora read_peft_adapter(const std::string& path, const LlamaConfig& base) {
  const std::string config_path = peft_config_path(path);
  json j;
  try {
    j = json::parse(read_text_file(config_path));
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", config_path, e.what());
  }
  PeftLora a = config_from_json(j, config_path);
  const std::string folder = folder_of(config_path);
  const std::string weights = folder + "/" + kWeightsName;
  QT_CHECK(file_exists(weights) || !file_exists(folder + "/adapter_model.bin"),
           "{}: the adapter is adapter_model.bin (a PyTorch pickle), which qtune does not read: save it with "
           "safe_serialization=True (adapter_model.safetensors)", folder);
  const SafetensorsFile f(weights);
  read_tensors(f, a, base);
  check_peft_lora(a, base, weights);
  for (const std::string& target : a.targets) {
    const int slot = projection_index(target);
    if (!permuted_rows(slot)) continue;
    for (int l = 0; l < base.n_layers; ++l) {
      Tensor& B = a.adapters.at(projection_stem(l, slot) + ".lora_b");
      Tensor meta(B.shape);
      hf_to_meta_rows(B.ptr(), meta.ptr(), B.rows(), B.cols(), base.head_dim());
      B = std::move(meta);
    }
  }
  return a;
}

}  // namespace qtune
