// qtune finetune — train a model's adapters (lora, qlora, qalora, intlora-mul, intlora-shift) or
// all its weights (full) on text.
// With --init-config instead of --model it pretrains a new, randomly initialised model
// (method full; the vocabulary comes from --tokenizer).
//
// Output (--out): an adapter GGUF (lora/qlora: llama.cpp-loadable LoRA; the integer methods: a
// qtune adapter; both with qtune.run.* keys, see adapter_file.h); full → the model GGUF (F32).
// Checkpoints (--save-every) go to --checkpoint (default OUT.ckpt.gguf) and --resume continues
// one bit-exactly. --init-adapter starts lora/qlora from an existing adapter (a Hugging Face PEFT
// folder or a qtune adapter; cli/init_adapter.h); with --steps 0 it is written back unchanged.
// Everything is written atomically: a killed run never leaves a partial OUT, report or checkpoint.
// Under `mpirun -np N` it trains data-parallel (train/trainer.h): --batch is per rank, every rank
// reads the whole data and trains on its shard of each global batch of N·batch windows; rank 0
// alone writes the output, report and checkpoints and prints.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/adapter_file.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/flags.h"
#include "cli/init_adapter.h"
#include "core/dist.h"
#include "core/error.h"
#include "core/file.h"
#include "core/hash.h"
#include "io/dataset.h"
#include "io/model_file.h"
#include "models/init.h"
#include "models/llama.h"
#include "train/data_source.h"
#include "train/trainer.h"

namespace qtune::cli {

namespace {

struct FinetuneArgs {
  ModelArgs model;
  DataArgs data;
  MethodOptions method;
  MethodFlags method_flags;
  TrainOptions train;
  std::string schedule = "cosine";
  std::string init_config;  // pretraining from scratch instead of --model
  std::string init_adapter;  // lora/qlora: start from this adapter's A and B
  std::string out, report;
};

void add_flags(CLI::App& app, FinetuneArgs& a) {
  add_model_flags(app, a.model, /*with_tokenizer=*/true, /*model_required=*/false);
  app.add_option("--init-config", a.init_config,
                 "pretrain a new randomly initialised model instead of --model (needs --tokenizer, --method full), "
                 "e.g. dim=128,hidden=344,layers=4,heads=4,kv_heads=4,seq=256");
  app.add_option("--init-adapter", a.init_adapter,
                 "lora/qlora: start from this adapter's A and B (a Hugging Face PEFT folder or its "
                 "adapter_config.json, or a qtune lora/qlora adapter); its rank, alpha and targets are used");
  add_data_flags(app, a.data, /*with_val_file=*/true);
  a.method_flags = add_method_flags(app, a.method);
  add_train_flags(app, a.train, a.schedule, /*zero_steps=*/true);
  app.add_option("--out,-o", a.out, "output: the adapter GGUF (adapter methods) or the model GGUF (full)")->required();
  add_report_flag(app, a.report);
}

// Flags → library options; throws Error for values the parser could not judge alone
// (before any file is read, so a typo fails fast).
void finish_options(const CLI::App& app, FinetuneArgs& a) {
  QT_CHECK(a.model.model.empty() != a.init_config.empty(), "give exactly one of --model and --init-config");
  if (!a.init_config.empty()) {
    QT_CHECK(!a.model.tokenizer.empty(), "--init-config needs --tokenizer (the new model's vocabulary)");
    QT_CHECK(a.method.method == "full", "--init-config pretrains all weights: use --method full, not '{}'",
             a.method.method);
  }
  QT_CHECK(a.init_adapter.empty() || a.init_config.empty(), "--init-adapter adapts a --model, not an --init-config "
           "one");
  finish_method_and_train(app, a.method_flags, a.method, a.train, a.schedule);
  a.train.batch = a.data.batch;
  a.train.seq = a.data.seq;
  if (a.train.checkpoint.empty()) a.train.checkpoint = a.out + ".ckpt.gguf";
  // Every path before any file is read: a bad output found after training loses the run.
  std::vector<NamedPath> in = model_inputs(a.model);
  in.push_back({"--data", a.data.data});
  if (!a.data.val_file.empty()) in.push_back({"--val-file", a.data.val_file});
  if (!a.train.resume.empty()) in.push_back({"--resume", a.train.resume});
  if (!a.init_adapter.empty()) in.push_back({"--init-adapter", init_adapter_file(a.init_adapter)});
  std::vector<NamedPath> out = {{"--out", a.out}, {"--checkpoint", a.train.checkpoint}};
  if (!a.report.empty()) out.push_back({"--report", a.report});
  check_paths(in, out, {{"--checkpoint", "--resume"}});  // a resumed run replaces its checkpoint
}

// The model file's bytes (or the --init-config spec): recorded in checkpoints, checked on resume.
std::string model_fingerprint(const FinetuneArgs& a) {
  if (!a.init_config.empty()) return fingerprint_hex(fingerprint(a.init_config.data(), a.init_config.size()));
  const std::vector<std::string> files = model_paths(a.model.model);
  if (files.size() == 1) return fingerprint_hex(fingerprint_file(files[0]));
  std::vector<uint64_t> each;  // a checkpoint folder: the fingerprints of its files, in order
  for (const std::string& f : files) each.push_back(fingerprint_file(f));
  return fingerprint_hex(fingerprint(each.data(), each.size() * sizeof(uint64_t)));
}

// The tokenized windows the run trains and validates on: covers the data file, the tokenizer,
// --seq and the hold-out.
std::string data_fingerprint(const DataSplit& s) {
  uint64_t h = 0x9e3779b97f4a7c15ULL;
  for (const Dataset* d : {&s.train, &s.val}) {
    h = fingerprint(d->tokens.data(), d->tokens.size() * sizeof(int32_t), h);
    h = fingerprint(d->targets.data(), d->targets.size() * sizeof(int32_t), h);
  }
  return fingerprint_hex(h);
}

nlohmann::json curve_json(const TrainResult& r) {
  nlohmann::json loss = nlohmann::json::array(), val = nlohmann::json::array();
  for (const auto& p : r.loss_curve) loss.push_back({{"step", p.step}, {"loss", p.loss}, {"lr", p.lr}});
  for (const auto& p : r.val_curve) val.push_back({{"step", p.step}, {"loss", p.loss}, {"windows", p.windows}});
  return {{"loss_curve", loss}, {"val_curve", val}};
}

// The memory breakdown (Llama::memory, the optimizer's state) next to the peak RSS; `other` is
// what the breakdown does not see: code and libraries, the tokenized data, the allocator, the
// kernels' per-thread scratch.
nlohmann::json memory_json(const TrainResult& r, const Llama& model) {
  const MemoryBreakdown m = model.memory();
  const int64_t sum =
      m.weights + m.adapters + r.optimizer_state_bytes + m.saved_activations + m.logits + m.workspace;
  return {{"peak_rss_bytes", r.peak_rss_bytes},
          {"weights_bytes", m.weights},
          {"adapters_bytes", m.adapters},
          {"optimizer_state_bytes", r.optimizer_state_bytes},
          {"saved_activations_bytes", m.saved_activations},
          {"logits_bytes", m.logits},
          {"workspace_bytes", m.workspace},
          {"accounted_bytes", sum},
          {"other_bytes", r.peak_rss_bytes - sum}};
}

// One stderr line with the same figures, in MiB.
void print_memory(const nlohmann::json& m) {
  auto mib = [&](const char* k) { return m[k].get<int64_t>() / 1048576.0; };
  std::fprintf(stderr,
               "memory: peak RSS %.1f MiB = weights %.1f + adapters %.1f + optimizer %.1f + saved activations %.1f + "
               "logits %.1f + workspace %.1f + other %.1f\n",
               mib("peak_rss_bytes"), mib("weights_bytes"), mib("adapters_bytes"), mib("optimizer_state_bytes"),
               mib("saved_activations_bytes"), mib("logits_bytes"), mib("workspace_bytes"), mib("other_bytes"));
}

nlohmann::json report_json(const FinetuneArgs& a, const DataSplit& split, const TrainResult& r, const Llama& model) {
  const std::map<std::string, double> stats = model.stats();
  nlohmann::json j = curve_json(r);
  j.update({{"command", "finetune"},
            {"model", a.init_config.empty() ? a.model.model : "init:" + a.init_config},
            {"init_adapter", a.init_adapter.empty() ? nlohmann::json() : nlohmann::json(a.init_adapter)},
            {"data", a.data.data},
            {"out", a.out},
            {"method", options_json(a.method)},
            {"steps", a.train.steps},
            {"batch", a.train.batch},
            {"seq", a.train.seq},
            {"lr", a.train.lr},
            {"seed", a.train.seed},
            {"train_windows", split.train.n_windows},
            {"val_windows", split.val.n_windows},
            {"val_loss", r.final_val_loss ? nlohmann::json(*r.final_val_loss) : nlohmann::json()},
            {"val_perplexity", r.final_val_ppl ? nlohmann::json(*r.final_val_ppl) : nlohmann::json()},
            {"val_perplexity_windows", r.final_val_windows},  // the whole set: what `eval` of the merge gives
            {"tokens_per_second", r.tokens_per_second},  // the job's: over every rank
            {"ranks", r.ranks},
            {"global_batch", a.train.batch * r.ranks},
            {"allreduce_seconds", r.allreduce_seconds},  // summing grads and losses over ranks
            {"allreduce_share", r.train_seconds > 0 ? r.allreduce_seconds / r.train_seconds : 0.0},
            {"step_seconds", r.step_seconds},  // bench/peers: tok/s = batch·seq / their median
            {"peak_rss_bytes", r.peak_rss_bytes},
            {"memory", memory_json(r, model)},
            {"trainable_params", r.trainable_params},
            // the adapters' tensors, trained and frozen (LoLDU's L_r, Ū_r, P), without grads or optimizer state
            {"adapter_state_bytes", model.adapter_bytes()},
            {"wall_seconds", r.wall_seconds},
            {"resumed_from_step", r.first_step - 1}});
  j.update(intlora_stats_json(stats));
  return j;
}

void write_output(Llama& model, const FinetuneArgs& a) {
  if (a.method.method == "full")
    save_model(model.merged(), a.out, GgmlType::F32, a.model.model, a.model.tokenizer);
  else
    write_trained_adapter(a.out, model.adapter_tensors(), state_tensors(model), a.method, a.train.seed,
                          {std::filesystem::path(a.model.model).filename().string(), a.train.model_fingerprint});
}

}  // namespace

int cmd_finetune(int argc, char** argv) {
  CLI::App app{"Fine-tune a model on text: adapters (lora, qlora; LoLDU: loldu, qloldu; and the integer methods "
               "qalora, intlora-mul, intlora-shift, qaloldu, whose merge is exact in integers), or all weights "
               "(--method full).",
               "qtune finetune"};
  FinetuneArgs a;
  add_flags(app, a);
  QT_PARSE(app, argc, argv);

  finish_options(app, a);
  ModelFile mf;
  if (a.init_config.empty()) {
    mf = open_model(a.model.model);  // float weights streamed as the slots are built
  } else {
    mf.config = parse_config_spec(a.init_config);
    mf.config.vocab_size = load_tokenizer(a.model.tokenizer)->vocab_size();
    mf = random_model(mf.config, a.train.seed);
  }
  std::optional<InitAdapter> init;
  if (!a.init_adapter.empty()) {  // before the data: a bad adapter fails fast
    init = read_init_adapter(a.init_adapter, mf.config);
    adopt_init_options(*init, a.method_flags, a.method);
    a.train.method = a.method;
  }
  QT_CHECK(a.data.seq <= mf.config.seq_len, "--seq {} is longer than the context of {} ({})", a.data.seq,
           a.init_config.empty() ? a.model.model : "--init-config", mf.config.seq_len);
  auto tok = open_tokenizer(a.model, mf.config);
  DataOptions dopt;
  dopt.seq_len = a.data.seq;
  dopt.val_every = a.data.val_every;
  DataSplit split = load_data(a.data.data, *tok, dopt, a.data.val_file);
  a.train.model_fingerprint = model_fingerprint(a);
  a.train.data_fingerprint = data_fingerprint(split);

  Llama model(std::move(mf), a.method, a.train.seed);  // releases the file's weights as it builds
  if (init) load_init_adapter(model, *init);  // a --resume then replaces it with the checkpoint's
  Batcher batcher(split.train, a.train.batch * dist::size(), a.train.seed);  // the global batch
  BatcherSource source(batcher, split.train.seq_len);
  DatasetEval val(split.val);
  ModelRef<Llama> ref(model);
  TrainResult r = train(ref, source, split.val.n_windows > 0 ? &val : nullptr, a.train);
  if (!dist::is_root()) return 0;  // every rank holds the same model: rank 0 writes and reports

  write_output(model, a);
  const nlohmann::json report = report_json(a, split, r, model);
  write_report(a.report, report);
  print_memory(report["memory"]);
  if (r.first_step > 1) std::printf("resumed from step %lld of %s\n", static_cast<long long>(r.first_step - 1),
                                    a.train.resume.c_str());
  if (r.loss_curve.empty())
    std::printf("no training (--steps 0)");
  else
    std::printf("final loss %.4f", r.loss_curve.back().loss);
  if (r.final_val_ppl)
    std::printf("  val perplexity %.4f (%lld windows)", *r.final_val_ppl, static_cast<long long>(r.final_val_windows));
  std::printf("  %.0f tok/s  %lld trainable params  → %s\n", r.tokens_per_second,
              static_cast<long long>(r.trainable_params), a.out.c_str());
  if (r.ranks > 1)
    std::printf("%d ranks × batch %d (global batch %d); all-reduce %.2f s of %.2f s of steps (%.1f%%)\n", r.ranks,
                a.train.batch, a.train.batch * r.ranks, r.allreduce_seconds, r.train_seconds,
                r.train_seconds > 0 ? 100.0 * r.allreduce_seconds / r.train_seconds : 0.0);
  return 0;
}

}  // namespace qtune::cli
