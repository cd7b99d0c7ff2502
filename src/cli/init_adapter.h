// cli/init_adapter.h — `qtune finetune --init-adapter PATH`: start a lora or qlora run from an
// existing adapter's A and B instead of the fresh initialisation (B = 0), e.g. to continue
// training an adapter made with Hugging Face PEFT.
//
// PATH is a PEFT folder or its adapter_config.json (io/peft_adapter.h: q/k lora_B are brought
// back to qtune's row order), or a qtune lora/qlora adapter or training checkpoint. The rank,
// alpha and targets of the run are the adapter's; a --rank, --alpha or --target given with
// another value is refused, as is a --method other than lora and qlora.
#pragma once
#include <string>
#include <vector>

#include "cli/flags.h"
#include "core/tensor.h"
#include "io/model_file.h"
#include "models/llama.h"

namespace qtune::cli {

struct InitAdapter {
  std::string path;  // as given (for messages)
  int rank = 0;      // kFullRank for a qtune --rank full adapter
  float alpha = 0;
  std::vector<std::string> targets;  // --target names
  TensorMap adapters;                // qtune names and layout ("blk.N.attn_q.lora_a", ...)
};

// The input file --init-adapter names (for cli/paths.h): PATH/adapter_config.json for a folder.
std::string init_adapter_file(const std::string& path);

// Reads and checks PATH against the base model's config; throws Error naming the file.
InitAdapter read_init_adapter(const std::string& path, const LlamaConfig& base);

// The adapter's rank, alpha and targets into m (then validated); Error for --method other than
// lora/qlora and for an explicit flag that says otherwise.
void adopt_init_options(const InitAdapter& a, const MethodFlags& flags, MethodOptions& m);

// Copies every A and B into the model's adapter params; Error naming the file unless the two
// sets of names and shapes are the same.
void load_init_adapter(Llama& model, const InitAdapter& a);

}  // namespace qtune::cli
