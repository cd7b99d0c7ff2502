// qtune merge — fold a LoRA adapter into its base model: a float GGUF, or with --bits a PTQ
// b-bit GGUF of the merged weights.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "cli/adapter_file.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/flags.h"
#include "core/error.h"
#include "io/model_file.h"
#include "models/llama.h"

namespace qtune::cli {

int cmd_merge(int argc, char** argv) {
  CLI::App app{"Merge a LoRA adapter (from `qtune finetune`, a training checkpoint, or a llama.cpp LoRA GGUF) "
               "into its base model. qlora adapters merge onto the quantized base they were trained on.",
               "qtune merge"};
  ModelArgs ma;
  add_model_flags(app, ma, /*with_tokenizer=*/false);
  std::string adapter, out;
  int bits = 32;
  bool symmetric = false;
  app.add_option("--adapter,-a", adapter, "adapter GGUF or training checkpoint")->required();
  app.add_option("--out,-o", out, "merged model GGUF")->required();
  app.add_option("--bits", bits, "quantize the merged weights: 4 (Q4_1) or 8 (Q8_0); 32 = float")
      ->capture_default_str()
      ->check(CLI::IsMember({4, 8, 16, 32}));
  app.add_flag("--symmetric", symmetric, "with --bits 4: Q4_0 instead of Q4_1");
  QT_PARSE(app, argc, argv);

  GgmlType type = ggml_type_for_bits(bits, symmetric);
  ModelFile mf = load_model(ma.model);
  AdapterFile a = read_adapter(adapter);
  validate(a.method);
  Llama model(mf, a.method, 0);
  load_adapter_into(model, a.adapters, adapter);
  save_model(model.merged(), out, type, ma.model);
  std::printf("merged %s (%s, rank %d, %zu tensors) into %s → %s (%s)\n", adapter.c_str(), a.method.method.c_str(),
              a.method.rank, a.adapters.size(), ma.model.c_str(), out.c_str(),
              ggml_type_name(static_cast<uint32_t>(type)).c_str());
  return 0;
}

}  // namespace qtune::cli
