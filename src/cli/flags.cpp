#include "cli/flags.h"

#include <type_traits>

#include "core/error.h"
#include "quant/gse.h"
#include "train/schedule.h"

namespace qtune::cli {

void add_model_flags(CLI::App& app, ModelArgs& a, bool with_tokenizer, bool model_required) {
  auto* m = app.add_option("--model,-m", a.model, "model: llama2.c checkpoint (v0/v1), GGUF, or a Hugging Face LLaMA checkpoint "
                                                "folder (config.json + *.safetensors)");
  if (model_required) m->required();
  if (with_tokenizer)
    app.add_option("--tokenizer,-t", a.tokenizer,
                   "tokenizer: llama2.c tokenizer.bin, SentencePiece .model, or a GGUF with a vocabulary "
                   "(default: the vocabulary embedded in a GGUF model, or a Hugging Face folder's tokenizer.model)");
}

namespace {

// One CLI option for one declared method option, with its default and the methods it is for.
template <class T>
CLI::Option* add_one(CLI::App& app, T& field, const OptionInfo& info) {
  std::string names = std::string("--") + info.name + (info.alias ? std::string(",") + info.alias : "");
  std::string help = info.help;
  if (std::string(info.name) == "method") help += fmt::format(": {}", fmt::join(info.choices, " | "));
  if (info.applies != Applies::all) help += std::string(" [") + applies_str(info.applies) + "]";
  if constexpr (std::is_same_v<T, int>) {
    if (!info.named.empty()) {
      // the word becomes its value before CLI11 parses the int; the value typed as a number is refused
      const CLI::Validator words(
          [&info](std::string& s) {
            for (const auto& [word, value] : info.named) {
              if (s == word) s = std::to_string(value);
              else if (s == std::to_string(value)) return fmt::format("{} is invalid (valid: {}..{} or {})", s, info.min, info.max, word);
            }
            return std::string();
          },
          "");
      return app.add_option(names, field, help)->transform(words)->default_str(option_value_str(field, info));
    }
  }
  if constexpr (std::is_same_v<T, bool>) {
    return app.add_flag(names, field, help);
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    return app.add_option(names, field, help)->delimiter(',')->default_str(option_value_str(field));
  } else {
    return app.add_option(names, field, help)->default_str(option_value_str(field));
  }
}

}  // namespace

void refuse_empty_numbers(CLI::App& app) {
  static const CLI::Validator non_empty(
      [](std::string& v) { return v.empty() ? std::string("needs a number, got an empty value") : std::string(); },
      "");
  for (CLI::Option* o : app.get_options()) {
    const std::string t = o->get_type_name();  // "INT", "FLOAT:{4,8}", "UINT:INT in [0 - 1024]", ...
    for (const char* number : {"INT", "UINT", "FLOAT", "POSITIVE", "NONNEGATIVE"})
      if (t.starts_with(number)) {
        o->check(non_empty);
        break;
      }
  }
}

MethodFlags add_method_flags(CLI::App& app, MethodOptions& m) {
  MethodFlags flags;
  m.for_each([&](auto& field, const OptionInfo& info) { flags.push_back({add_one(app, field, info), &info}); });
  return flags;
}

void refuse_inapplicable_flags(const MethodFlags& flags, const MethodOptions& m) {
  const MethodInfo& method = method_info(m.method);
  for (const auto& [opt, info] : flags)
    QT_CHECK(opt->count() == 0 || applies(info->applies, method),
             "--{} is an option of {}; it does not apply to --method {}", info->name, applies_str(info->applies),
             m.method);
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

void add_train_flags(CLI::App& app, TrainOptions& t, std::string& schedule, bool zero_steps) {
  app.add_option("--steps", t.steps,
                 zero_steps ? "optimizer updates in all (a resumed run continues up to this; 0: write the initial "
                              "adapter, e.g. --init-adapter's, without training)"
                            : "optimizer updates in all (a resumed run continues up to this)")
      ->capture_default_str()
      ->check(zero_steps ? kNonNegative : kPositive);
  std::vector<std::string> defaults;
  for (const auto& m : methods()) defaults.push_back(fmt::format("{} {}", m.name, m.default_lr));
  app.add_option("--lr", t.lr,
                 fmt::format("peak learning rate (default: the method's measured best: {})", fmt::join(defaults, ", ")))
      ->check(kPositive);
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
  app.add_option("--eval-batches", t.eval_batches,
                 "validation batches of a periodic evaluation (0 = the whole set); the final one after the last "
                 "step always scores the whole set")
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
  // Bounded: the OpenMP runtime crashes on 100000 threads and runs out of memory on 2^31.
  app.add_option("--threads", threads, "worker threads (0 = all cores; at most 1024)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
}

void finish_method_and_train(const CLI::App& app, const MethodFlags& flags, MethodOptions& m, TrainOptions& t,
                             const std::string& schedule) {
  refuse_inapplicable_flags(flags, m);
  validate(m);
  m.gemm = gemm_mode_str(gemm_mode(m));
  if (app.get_option("--lr")->count() == 0) t.lr = method_info(m.method).default_lr;
  t.schedule = parse_schedule(schedule);
  t.method = m;
}

}  // namespace qtune::cli
