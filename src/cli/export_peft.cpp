#include "cli/export_peft.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <set>

#include "cli/adapter_file.h"
#include "cli/paths.h"
#include "core/error.h"
#include "core/file.h"
#include "io/model_file.h"
#include "io/peft_adapter.h"
#include "io/projections.h"

namespace qtune::cli {

namespace {

// Why a method's adapter is not PEFT's additive LoRA (method_info(m).lora_scale is false).
std::string not_additive_why(const std::string& method) {
  const MethodInfo& m = method_info(method);
  if (method == "qalora") return "its A acts on group sums of the input and it trains the base's scales";
  if (m.intlora) return "it multiplies or shifts the quantized base instead of adding B·A";
  if (m.loldu) return "it trains a diagonal scaling of an LDU slice of the base, not a B·A";
  return "it is not an additive B·A";
}

// The folder is written as a whole (io/peft_adapter.h): its parent must exist and be writable,
// and the path be a folder or nothing yet.
void check_out_folder(const std::string& dir) {
  QT_CHECK(!dir.empty(), "--out is an empty path");
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0)
    QT_CHECK(S_ISDIR(st.st_mode), "--out {}: cannot write a PEFT adapter folder: it is {}, not a directory", dir,
             file_kind(st.st_mode));
  std::string parent = dir;
  while (parent.size() > 1 && parent.back() == '/') parent.pop_back();
  const size_t slash = parent.rfind('/');
  parent = slash == std::string::npos ? "." : slash == 0 ? "/" : parent.substr(0, slash);
  QT_CHECK(::stat(parent.c_str(), &st) == 0 && S_ISDIR(st.st_mode), "--out {}: cannot write: directory '{}' does not "
           "exist", dir, parent);
  QT_CHECK(::access(parent.c_str(), W_OK) == 0, "--out {}: cannot write: directory '{}' is not writable", dir, parent);
}

}  // namespace

void export_peft(const std::string& adapter, const std::string& out_dir, const std::string& base) {
  QT_CHECK(!base.empty(), "--format peft needs --model (the base model: its head count orders the q/k rows for "
                          "Hugging Face, and adapter_config.json names it)");
  check_paths({{"--adapter", adapter}, {"--model", base}}, {});
  check_out_folder(out_dir);

  TrainedAdapter a = read_trained_adapter(adapter);
  QT_CHECK(a.architecture == "llama", "{}: an adapter of a {} model: PEFT's LoRA here is for LLaMA", adapter,
           a.architecture);
  QT_CHECK(method_info(a.method.method).lora_scale,
           "{}: a {} adapter is not PEFT's LoRA (W + (lora_alpha/r)·B·A): {}; use `qtune merge` for the merged model",
           adapter, a.method.method, not_additive_why(a.method.method));
  PeftLora p;
  p.alpha = a.method.alpha;
  p.base_model = base;
  std::set<int> ranks, slots;
  for (const auto& [name, t] : a.adapters) {
    if (name.ends_with(".lora_a")) ranks.insert(int(t.rows()));
    if (int slot = projection_of(name.substr(0, name.rfind('.'))); slot >= 0) slots.insert(slot);
  }
  QT_CHECK(!ranks.empty(), "{}: holds no lora_a tensor", adapter);
  QT_CHECK(ranks.size() == 1, "{}: its ranks differ between modules ({} to {}; --rank full): PEFT would need "
           "rank_pattern and alpha_pattern, which qtune does not write", adapter, *ranks.begin(), *ranks.rbegin());
  p.rank = *ranks.begin();
  for (int s : slots) p.targets.push_back(kProjections[size_t(s)].target);
  p.adapters = std::move(a.adapters);
  const ModelFile mf = open_model(base);
  check_peft_lora(p, mf.config, adapter + " (on " + base + ")");

  if (a.method.method == "qlora")
    std::fprintf(stderr, "note: %s was trained on a %d-bit base; PEFT applies it to the weights it is given (the "
                 "float model, or qtune's quantized one exported with `qtune merge`)\n", adapter.c_str(),
                 a.method.bits);
  if (a.method.act_bits != 0 || !a.state.empty())
    std::fprintf(stderr, "note: %s was trained with int8 activations (--act-bits %d); PEFT runs it in float\n",
                 adapter.c_str(), a.method.act_bits);
  write_peft_adapter(out_dir, p, mf.config);
  std::string shown = out_dir;
  while (shown.size() > 1 && shown.back() == '/') shown.pop_back();
  std::printf("wrote %s/ (adapter_config.json, adapter_model.safetensors: %zu tensors, r %d, lora_alpha %g)\n",
              shown.c_str(), p.adapters.size(), p.rank, p.alpha);
}

}  // namespace qtune::cli
