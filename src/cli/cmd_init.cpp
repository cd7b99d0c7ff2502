// qtune init — write a new, randomly initialised LLaMA model without training it: the shape of
// finetune --init-config (same spec, same initialisation, same seed → the same weights), the
// vocabulary of --tokenizer, F32 GGUF. The weights are drawn and written a few MiB at a time,
// so a model far bigger than memory can be made (a 1.1B model is 4.4 GB of F32).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <optional>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/flags.h"
#include "core/error.h"
#include "core/progress.h"
#include "io/gguf_model.h"
#include "io/llama2c.h"  // check_llama_config
#include "io/tokenizer.h"
#include "models/init.h"

namespace qtune::cli {

int cmd_init(int argc, char** argv) {
  CLI::App app{"Write a randomly initialised model of a given shape (no training): the initialisation of "
               "finetune --init-config (N(0, 0.02), the residual projections N(0, 0.02/sqrt(2L)), norm gains 1, tied "
               "classifier), drawn from --seed. F32 GGUF with the tokenizer's vocabulary embedded, written tensor by "
               "tensor (memory stays small whatever the size).",
               "qtune init"};
  std::string spec, tokenizer, out;
  uint64_t seed = 42;  // finetune's default --seed, so `init` and `finetune --init-config` agree by default
  bool quiet = false;
  app.add_option("--config", spec, "the shape, as finetune --init-config: dim=2048,hidden=5632,layers=22,heads=32,"
                                   "kv_heads=4,seq=2048")->required();
  app.add_option("--tokenizer", tokenizer, "tokenizer (its vocabulary size is the model's; embedded in the file)")
      ->required();
  app.add_option("--seed", seed, "seed of the initialisation")->capture_default_str();
  app.add_option("--out,-o", out, "output GGUF")->required();
  app.add_flag("--quiet", quiet, "no progress bar");
  QT_PARSE(app, argc, argv);
  check_paths({{"--tokenizer", tokenizer}}, {{"--out", out}});

  LlamaConfig cfg = parse_config_spec(spec, "--config");
  const auto tok = load_tokenizer(tokenizer);
  cfg.vocab_size = tok->vocab_size();
  check_llama_config(cfg, "--config");
  std::optional<GgufVocab> vocab = tok->vocab();
  if (!vocab) std::fprintf(stderr, "note: %s: cannot embed this tokenizer's vocabulary; pass --tokenizer to use the "
                                   "model\n", tokenizer.c_str());
  GgufSaveOptions o;
  o.name = "qtune-random";
  if (vocab) o.vocab = &*vocab;

  RandomInit init(cfg, seed);
  int64_t total = 0, done = 0;
  for (const auto& t : init.tensors()) total += numel(t.shape);
  Progress bar(total, "init", !quiet);
  write_model_gguf_stream(cfg, out, o, init.tensors(), [&](size_t i, float* dst, int64_t n) {
    init.fill(i, dst, n);
    done += n;
    bar.update(done, init.tensors()[i].name);
  });
  bar.finish();
  std::printf("wrote %s: %s parameters (dim %d, hidden %d, %d layers, %d heads, %d kv heads, vocab %d, seq %d), "
              "seed %llu, %.1f MiB\n", out.c_str(), human_count(total).c_str(), cfg.dim, cfg.hidden_dim, cfg.n_layers,
              cfg.n_heads, cfg.n_kv_heads, cfg.vocab_size, cfg.seq_len, static_cast<unsigned long long>(seed),
              total * 4.0 / 1048576.0);
  return 0;
}

}  // namespace qtune::cli
