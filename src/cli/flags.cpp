#include "cli/flags.h"

namespace qtune::cli {

void add_model_flags(CLI::App& app, ModelArgs& a, bool with_tokenizer, bool model_required) {
  auto* m = app.add_option("--model,-m", a.model, "model file: llama2.c checkpoint (v0/v1) or GGUF");
  if (model_required) m->required();
  if (with_tokenizer)
    app.add_option("--tokenizer,-t", a.tokenizer,
                   "tokenizer: llama2.c tokenizer.bin, SentencePiece .model, or a GGUF with a vocabulary "
                   "(default: the vocabulary embedded in a GGUF model)");
}

void add_method_flags(CLI::App& app, MethodOptions& m) {
  app.add_option("--method", m.method,
                 "fine-tuning method: full | lora | qlora | qalora | intlora-mul | intlora-shift")
      ->capture_default_str();
  app.add_option("--rank,-r", m.rank, "adapter rank")->capture_default_str()->check(kPositive);
  app.add_option("--alpha", m.alpha, "LoRA alpha (scale = alpha / rank; lora and qlora only)")->capture_default_str();
  app.add_option("--bits", m.bits, "bits of the quantized base (qlora, qalora, intlora-*)")
      ->capture_default_str()
      ->check(CLI::Range(2, 8));
  app.add_option("--group", m.group, "quantization group size along the input dim (0 = one scale per row)")
      ->capture_default_str()
      ->check(kNonNegative);
  app.add_flag("--symmetric", m.symmetric, "symmetric quantization of the base (default: asymmetric)");
  app.add_option("--scale-search", m.scale_search,
                 "base quantizer range: auto (mse for intlora-*, else minmax) | minmax | mse")
      ->capture_default_str();
  app.add_option("--target", m.targets,
                 "comma-separated weights that get an adapter (full: that are trained): "
                 "q,k,v,o,gate,up,down,output")
      ->delimiter(',')
      ->default_str("q,k,v,o,gate,up,down");
  app.add_option("--act-bits", m.act_bits,
                 "quantize every projection's input activations: 0 = float, 8 = int8 per tensor (W8A8, W4A8)")
      ->capture_default_str()
      ->check(CLI::IsMember({0, 8}));
  app.add_option("--act-calib", m.act_calib, "with --act-bits 8: training micro-batches that calibrate the scales")
      ->capture_default_str()
      ->check(kPositive);
  app.add_option("--scale-lr", m.scale_lr,
                 "qalora: learning rate of the learned scales (relative steps: they train as multipliers of their initial "
                 "values) as a fraction of --lr; no weight decay on them")
      ->capture_default_str();
  app.add_flag("--lsq-grad-scale", m.lsq_grad_scale,
               "qalora: scale the learned step size's gradient by 1/sqrt(N*Qp) (LSQ; not in the reference)");
  app.add_option("--vmc", m.vmc, "intlora: variance matching rule of R: abs-max (reference code) | std (paper)")
      ->capture_default_str();
  app.add_option("--vmc-alpha", m.vmc_alpha, "intlora: VMC exponent alpha")->capture_default_str();
  app.add_flag("--zero-free", m.zero_free,
               "intlora: quantize the base on a grid without 0, so every weight can be adapted");
}

void add_data_flags(CLI::App& app, DataArgs& d, bool with_val_file) {
  app.add_option("--data,-d", d.data, "text data: .txt (one document per line) or .jsonl")->required();
  if (with_val_file)
    app.add_option("--val-file", d.val_file, "held-out data for validation (default: none, or --val-every)");
  app.add_option("--seq", d.seq, "sequence length in tokens")->capture_default_str()->check(CLI::Range(2, 1 << 20));
  app.add_option("--batch,-b", d.batch, "sequences per batch")->capture_default_str()->check(CLI::Range(1, 1 << 16));
  app.add_option("--val-every", d.val_every,
                 "hold out every K-th document of --data for validation (0 = no hold-out)")
      ->capture_default_str()
      ->check(kNonNegative);
}

void add_train_flags(CLI::App& app, TrainOptions& t, std::string& schedule) {
  app.add_option("--steps", t.steps, "optimizer updates in all (a resumed run continues up to this)")
      ->capture_default_str()
      ->check(kPositive);
  app.add_option("--lr", t.lr, "peak learning rate")->capture_default_str()->check(kPositive);
  app.add_option("--min-lr", t.min_lr, "learning rate at the end of linear/cosine decay")->capture_default_str();
  app.add_option("--warmup", t.warmup, "linear warmup steps from 0")->capture_default_str()->check(kNonNegative);
  app.add_option("--schedule", schedule, "lr schedule after warmup: cosine | linear | constant")->capture_default_str();
  app.add_option("--grad-accum", t.grad_accum, "micro-batches per optimizer update")
      ->capture_default_str()
      ->check(kPositive);
  app.add_option("--clip", t.clip, "max global gradient norm (0 = no clipping)")
      ->capture_default_str()
      ->check(kNonNegative);
  app.add_option("--weight-decay", t.weight_decay, "AdamW decoupled weight decay")
      ->capture_default_str()
      ->check(kNonNegative);
  app.add_option("--seed", t.seed, "seed for adapter init and batch order")->capture_default_str();
  app.add_option("--eval-every", t.val_every_steps, "validate every N steps (0 = after the last step only)")
      ->capture_default_str()
      ->check(kNonNegative);
  app.add_option("--eval-batches", t.eval_batches, "validation batches per evaluation (0 = the whole set)")
      ->capture_default_str()
      ->check(kNonNegative);
  app.add_option("--save-every", t.save_every, "write a checkpoint every N steps (0 = never)")
      ->capture_default_str()
      ->check(kNonNegative);
  app.add_option("--checkpoint", t.checkpoint, "where checkpoints go (default: OUT.ckpt.gguf)");
  app.add_option("--resume", t.resume, "continue from this checkpoint (same flags, same --threads for exact resume)");
  add_threads_flag(app, t.threads);
  app.add_flag("--quiet,-q", [&t](int64_t) { t.progress = false; }, "no progress bar");
}

void add_act_flags(CLI::App& app, ActArgs& a) {
  app.add_option("--act-bits", a.bits,
                 "activations: auto (as the model was fine-tuned) | 0 (float) | 8 (int8: integer weights run "
                 "the integer GEMM)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "0", "8"}));
  app.add_flag("--act-dynamic", a.dynamic,
               "int8 activations with a per-token scale, ignoring the static scales recorded at training");
}

void add_report_flag(CLI::App& app, std::string& report) {
  app.add_option("--report", report, "write a JSON report here (atomically)");
}

void add_threads_flag(CLI::App& app, int& threads) {
  app.add_option("--threads", threads, "worker threads (0 = all cores)")
      ->capture_default_str()
      ->check(kNonNegative);
}

}  // namespace qtune::cli
