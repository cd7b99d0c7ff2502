#include "cli/init_adapter.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "cli/adapter_file.h"
#include "core/error.h"
#include "io/peft_adapter.h"

namespace qtune::cli {

namespace {

// A folder or a .json file is a PEFT adapter; anything else is read as qtune's GGUF.
bool is_peft(const std::string& path) {
  struct stat st {};
  return (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) || path.ends_with(".json");
}

const OptionInfo* given(const MethodFlags& flags, const char* name) {
  for (const auto& [opt, info] : flags)
    if (std::strcmp(info->name, name) == 0 && opt->count() > 0) return info;
  return nullptr;
}

std::vector<std::string> in_slot_order(std::vector<std::string> targets) {
  std::sort(targets.begin(), targets.end(),
            [](const std::string& a, const std::string& b) { return projection_index(a) < projection_index(b); });
  targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
  return targets;
}

}  // namespace

std::string init_adapter_file(const std::string& path) { return is_peft(path) ? peft_config_path(path) : path; }

InitAdapter read_init_adapter(const std::string& path, const LlamaConfig& base) {
  InitAdapter a;
  a.path = path;
  if (is_peft(path)) {
    PeftLora p = read_peft_adapter(path, base);
    if (p.rslora)
      std::fprintf(stderr, "note: %s uses rsLoRA (scale lora_alpha/sqrt(r)): training with alpha %g (alpha/r is "
                   "the same scale)\n", path.c_str(), p.alpha);
    a.rank = p.rank;
    a.alpha = p.alpha;
    a.targets = p.targets;
    a.adapters = std::move(p.adapters);
    return a;
  }
  TrainedAdapter t = read_trained_adapter(path);
  QT_CHECK(t.architecture == "llama", "{}: an adapter of a {} model, not of this LLaMA", path, t.architecture);
  QT_CHECK(method_info(t.method.method).lora_scale, "{}: a {} adapter: --init-adapter takes lora and qlora adapters "
           "(an additive B·A)", path, t.method.method);
  a.rank = t.method.rank;
  a.alpha = t.method.alpha;
  a.targets = in_slot_order(t.method.targets);
  a.adapters = std::move(t.adapters);
  return a;
}

void adopt_init_options(const InitAdapter& a, const MethodFlags& flags, MethodOptions& m) {
  QT_CHECK(m.method == "lora" || m.method == "qlora", "--init-adapter starts a lora or qlora run (an additive B·A), "
           "not --method {}", m.method);
  if (const OptionInfo* r = given(flags, "rank"))
    QT_CHECK(m.rank == a.rank, "--rank {} conflicts with --init-adapter {} (rank {}): leave --rank out",
             option_value_str(m.rank, *r), a.path, option_value_str(a.rank, *r));
  if (given(flags, "alpha"))
    QT_CHECK(m.alpha == a.alpha, "--alpha {} conflicts with --init-adapter {} (alpha {}): leave --alpha out", m.alpha,
             a.path, a.alpha);
  if (given(flags, "target"))
    QT_CHECK(in_slot_order(m.targets) == a.targets, "--target {} conflicts with --init-adapter {} (targets {}): leave "
             "--target out", fmt::join(m.targets, ","), a.path, fmt::join(a.targets, ","));
  m.rank = a.rank;
  m.alpha = a.alpha;
  m.targets = a.targets;
  try {
    validate(m);
  } catch (const Error& e) {
    fail("--init-adapter {}: {}", a.path, e.what());
  }
}

void load_init_adapter(Llama& model, const InitAdapter& a) {
  size_t used = 0;
  for (const auto& p : model.trainable()) {
    auto it = a.adapters.find(p.name);
    QT_CHECK(it != a.adapters.end(), "{}: has no tensor {} (the model with its targets needs one)", a.path, p.name);
    QT_CHECK(it->second.shape == p.shape, "{}: tensor {} has shape {}, the model needs {}", a.path, p.name,
             shape_str(it->second.shape), shape_str(p.shape));
    std::memcpy(p.value, it->second.ptr(), size_t(p.numel) * sizeof(float));
    ++used;
  }
  QT_CHECK(used == a.adapters.size(), "{}: {} adapter tensors, but the model has {} adapter params (another base "
           "model?)", a.path, a.adapters.size(), used);
}

}  // namespace qtune::cli
