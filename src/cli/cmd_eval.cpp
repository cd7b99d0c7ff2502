// qtune eval — perplexity of a model on a text file, scored one of two ways (--style):
//   qtune             one document per line (.txt) or per JSON line, each BOS-first, packed into
//                     windows of --seq tokens, every position scored (what finetune validates)
//   llama-perplexity  the whole file as one string, chunks of --ctx tokens, the second half of
//                     each scored (train/llama_perplexity.h), so figures compare with llama.cpp
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/flags.h"
#include "core/error.h"
#include "core/system.h"
#include "io/dataset.h"
#include "io/model_file.h"
#include "models/llama.h"
#include "train/data_source.h"
#include "train/llama_perplexity.h"

namespace qtune::cli {

namespace {

struct LlamaStyleArgs {
  int ctx = 0;
  int64_t chunks = 0;
};

// What a style scores, read and checked before the model is built: the eval set, the length T
// the model runs on, and a describe() that turns the result into one line for humans and the
// style's report fields.
struct Scoring {
  std::unique_ptr<DataSplit> split;  // style qtune: the packed windows (set points into them)
  std::unique_ptr<EvalSet> set;
  int T = 0;
  int64_t max_batches = 0;
  std::function<std::pair<std::string, nlohmann::json>(const EvalResult&)> describe;
};

Scoring scoring_qtune_style(const Tokenizer& tok, const DataArgs& da, const std::string& model_path, int seq_len) {
  QT_CHECK(da.seq <= seq_len, "--seq {} is longer than the context of {} ({})", da.seq, model_path, seq_len);
  DataOptions dopt;
  dopt.seq_len = da.seq;
  dopt.val_every = da.val_every;
  Scoring s;
  s.split = std::make_unique<DataSplit>(load_data(da.data, tok, dopt));
  // --val-every: the held-out part only
  s.set = std::make_unique<DatasetEval>(da.val_every > 0 ? s.split->val : s.split->train);
  s.T = da.seq;
  s.max_batches = da.max_batches;
  s.describe = [da](const EvalResult& e) {
    const std::string part =
        da.val_every > 0 ? fmt::format("held-out: every {}th document", da.val_every) : "whole file";
    return std::pair{fmt::format("{} tokens in {} windows of {} ({})", e.targets, e.windows, da.seq, part),
                     nlohmann::json{{"seq", da.seq}, {"val_every", da.val_every}, {"tokens", e.targets},
                                    {"windows", e.windows}}};
  };
  return s;
}

bool is_jsonl(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return ext == ".jsonl";
}

Scoring scoring_llama_style(const Tokenizer& tok, const DataArgs& da, const LlamaStyleArgs& la,
                            const std::string& model_path, int seq_len) {
  QT_CHECK(!is_jsonl(da.data),
           "{}: --style llama-perplexity reads plain text (the whole file as one string, as llama-perplexity -f "
           "does), not JSON Lines",
           da.data);
  QT_CHECK(la.ctx <= seq_len, "--ctx {} is longer than the context of {} ({})", la.ctx, model_path, seq_len);
  // read_documents checks the file (UTF-8, no NUL, not empty) and drops a byte order mark.
  std::string text = read_documents(da.data, /*whole_file=*/true).at(0).text;
  if (text.back() == '\n') text.pop_back();  // as llama.cpp's -f: one trailing newline dropped
  auto chunks = std::make_unique<LlamaPerplexityChunks>(tok.encode(text, /*bos=*/true, /*eos=*/false), la.ctx,
                                                        tok.bos_id(), la.chunks, da.data);
  Scoring s;
  s.T = la.ctx;
  const LlamaPerplexityChunks& c = *chunks;
  s.describe = [&c](const EvalResult& e) {
    return std::pair{
        fmt::format("{} tokens in {} chunks of {} (llama-perplexity style: positions {}..{} of each chunk; {} of the "
                    "file's {} tokens fed)",
                    e.targets, c.chunks(), c.ctx(), c.first(), c.ctx() - 2, c.chunks() * c.ctx(), c.stream_tokens()),
        nlohmann::json{{"ctx", c.ctx()},
                       {"chunks", c.chunks()},
                       {"first_scored_position", c.first()},
                       {"scored_tokens", e.targets},
                       {"stream_tokens", c.stream_tokens()},
                       {"tokens", e.targets},
                       {"windows", c.chunks()}}};
  };
  s.set = std::move(chunks);
  return s;
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  CLI::App app{"Evaluate a model's perplexity on a data file: --style qtune (default) scores windows of --seq "
               "tokens, in order; --style llama-perplexity scores as llama.cpp's llama-perplexity does.",
               "qtune eval"};
  ModelArgs ma;
  DataArgs da;
  LlamaStyleArgs la;
  std::string report, style = "qtune";
  int threads = 0;
  add_model_flags(app, ma);
  add_data_flags(app, da, /*with_val_file=*/false);
  app.add_option("--max-batches", da.max_batches, "evaluate at most this many batches (0 = all; style qtune)")
      ->capture_default_str()
      ->check(kNonNegative);
  app.add_option("--style", style,
                 "qtune: one document per line, each BOS-first, windows of --seq, every position scored; "
                 "llama-perplexity: the whole file as one text, chunks of --ctx tokens with BOS in place of the "
                 "first, positions ctx/2..ctx-2 scored (llama.cpp's llama-perplexity)")
      ->capture_default_str()
      ->check(CLI::IsMember({"qtune", "llama-perplexity"}));
  app.add_option("--ctx", la.ctx, "chunk length in tokens (style llama-perplexity; as its -c)")
      ->check(CLI::Range(3, 1 << 20));
  app.add_option("--chunks", la.chunks, "score at most this many chunks (style llama-perplexity; 0 = all)")
      ->capture_default_str()
      ->check(kNonNegative);
  add_report_flag(app, report);
  add_threads_flag(app, threads);
  ActArgs act;
  add_act_flags(app, act);
  QT_PARSE(app, argc, argv);
  const bool llama_style = style == "llama-perplexity";
  for (const char* f : {"--seq", "--val-every", "--max-batches"})
    QT_CHECK(!llama_style || app.count(f) == 0, "{} does not apply to --style llama-perplexity (it scores chunks of "
             "--ctx tokens of the whole file)", f);
  for (const char* f : {"--ctx", "--chunks"})
    QT_CHECK(llama_style || app.count(f) == 0, "{} applies to --style llama-perplexity only", f);
  QT_CHECK(!llama_style || app.count("--ctx") > 0, "--style llama-perplexity needs --ctx N (the chunk length)");
  std::vector<NamedPath> in = model_inputs(ma);
  in.push_back({"--data", da.data});
  std::vector<NamedPath> out;
  if (!report.empty()) out.push_back({"--report", report});
  check_paths(in, out);
  use_threads(threads);

  ModelFile mf = open_model(ma.model);  // float weights streamed as the model is built
  auto tok = open_tokenizer(ma, mf.config);
  const int seq_len = mf.config.seq_len;
  const Scoring sc = llama_style ? scoring_llama_style(*tok, da, la, ma.model, seq_len)
                                 : scoring_qtune_style(*tok, da, ma.model, seq_len);

  const MethodOptions how = inference_method(mf, act);
  Llama model(mf, how, 0);
  ModelRef<Llama> ref(model);
  const double t0 = now_seconds();
  const EvalResult e = evaluate(ref, *sc.set, da.batch, sc.T, sc.max_batches);
  const double loss = e.loss, secs = now_seconds() - t0, ppl = std::exp(loss);
  const std::string path = describe_inference(mf, how);
  const auto [what, fields] = sc.describe(e);  // names the windows or chunks scored
  std::printf("perplexity %.4f  mean loss %.5f  over %s (%s)\n", ppl, loss, what.c_str(), path.c_str());
  nlohmann::json r = {{"command", "eval"},
                      {"style", style},
                      {"model", ma.model},
                      {"data", da.data},
                      {"batch", da.batch},
                      {"mean_loss", loss},
                      {"perplexity", ppl},
                      {"seconds", secs},
                      {"inference", path},
                      {"act_bits", how.act_bits},
                      {"peak_rss_bytes", peak_rss_bytes()}};
  r.update(fields);
  write_report(report, r);
  return 0;
}

}  // namespace qtune::cli
