// qtune export-lora — a llama.cpp-loadable LoRA adapter GGUF from a qtune adapter or checkpoint,
// or (--format peft) a Hugging Face PEFT adapter folder (cli/export_peft.h).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "cli/adapter_file.h"
#include "cli/commands.h"
#include "cli/export_peft.h"
#include "cli/flags.h"
#include "cli/paths.h"
#include "core/error.h"
#include "io/gguf.h"
#include "io/lora_gguf.h"
#include "io/model_file.h"

namespace qtune::cli {

int cmd_export_lora(int argc, char** argv) {
  CLI::App app{"Write a llama.cpp-loadable LoRA adapter GGUF (general.type=adapter, *.weight.lora_a/b, "
               "adapter.lora.alpha) from a qtune adapter or training checkpoint. With --model, also check "
               "it against the base model's tensor names and shapes. Prints the base the adapter was trained on: "
               "a qlora adapter applies as trained only to the base `qtune quantize --like ADAPTER` writes. "
               "--format peft writes a Hugging Face PEFT adapter folder instead (adapter_config.json + "
               "adapter_model.safetensors; needs --model).",
               "qtune export-lora"};
  std::string adapter, out, base, format = "gguf";
  app.add_option("--adapter,-a", adapter, "qtune adapter GGUF or training checkpoint")->required();
  app.add_option("--out,-o", out, "output LoRA GGUF (--format peft: the adapter folder)")->required();
  app.add_option("--model,-m", base, "base model to check the adapter against (optional; --format peft needs it)");
  app.add_option("--format", format, "gguf: llama.cpp's LoRA GGUF | peft: a Hugging Face PEFT folder")
      ->capture_default_str()
      ->check(CLI::IsMember({"gguf", "peft"}));
  QT_PARSE(app, argc, argv);
  if (format == "peft") {
    export_peft(adapter, out, base);
    return 0;
  }
  std::vector<NamedPath> in = {{"--adapter", adapter}};
  if (!base.empty()) in.push_back({"--model", base});
  check_paths(in, {{"--out", out}});

  TrainedAdapter a = read_trained_adapter(adapter);
  QT_CHECK(a.architecture == "llama", "{}: an adapter of a {} model: llama.cpp has no such architecture; use `qtune "
                                      "merge`", adapter, a.architecture);
  QT_CHECK(method_info(a.method.method).lora_scale,
           "{}: a {} adapter is not an additive LoRA (llama.cpp cannot apply it); use `qtune merge` to get the "
           "merged model",
           adapter, a.method.method);
  ModelFile mf;
  if (!base.empty()) mf = load_model(base);
  write_trained_adapter(out, a.adapters, a.state, a.method, a.seed, a.base);
  auto problems = check_llamacpp_lora_rules(GgufFile(out), base.empty() ? nullptr : &mf);
  if (!problems.empty()) {
    std::remove(out.c_str());
    fail("{}: would not load in llama.cpp: {}", adapter, problems.front());
  }
  std::printf("wrote %s (%zu tensors, rank %s, alpha %g)\n", out.c_str(), a.adapters.size(), rank_str(a.method.rank).c_str(),
              a.method.alpha);
  // llama.cpp applies the LoRA to whatever base it is given: say which one it was trained on
  std::printf("base: %s\n", base_needed(a, adapter).c_str());
  return 0;
}

}  // namespace qtune::cli
