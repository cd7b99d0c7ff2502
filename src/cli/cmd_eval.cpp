// qtune eval — perplexity of a model on a text file.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/flags.h"
#include "core/error.h"
#include "core/system.h"
#include "io/dataset.h"
#include "io/model_file.h"
#include "models/llama.h"
#include "train/data_source.h"

namespace qtune::cli {

int cmd_eval(int argc, char** argv) {
  CLI::App app{"Evaluate a model's perplexity on a data file (windows of --seq tokens, in order).", "qtune eval"};
  ModelArgs ma;
  DataArgs da;
  std::string report;
  int threads = 0;
  add_model_flags(app, ma);
  add_data_flags(app, da, /*with_val_file=*/false);
  app.add_option("--max-batches", da.max_batches, "evaluate at most this many batches (0 = all)")
      ->capture_default_str()
      ->check(kNonNegative);
  add_report_flag(app, report);
  add_threads_flag(app, threads);
  ActArgs act;
  add_act_flags(app, act);
  QT_PARSE(app, argc, argv);
  std::vector<NamedPath> in = model_inputs(ma);
  in.push_back({"--data", da.data});
  std::vector<NamedPath> out;
  if (!report.empty()) out.push_back({"--report", report});
  check_paths(in, out);
  use_threads(threads);

  ModelFile mf = open_model(ma.model);  // float weights streamed as the model is built
  auto tok = open_tokenizer(ma, mf.config);
  QT_CHECK(da.seq <= mf.config.seq_len, "--seq {} is longer than the context of {} ({})", da.seq, ma.model,
           mf.config.seq_len);
  DataOptions dopt;
  dopt.seq_len = da.seq;
  dopt.val_every = da.val_every;
  DataSplit split = load_data(da.data, *tok, dopt);
  const Dataset& set = da.val_every > 0 ? split.val : split.train;  // --val-every: the held-out part only

  const MethodOptions how = inference_method(mf, act);
  Llama model(mf, how, 0);
  ModelRef<Llama> ref(model);
  double t0 = now_seconds();
  const EvalResult e = evaluate(ref, set, da.batch, da.max_batches);
  const double loss = e.loss, secs = now_seconds() - t0, ppl = std::exp(loss);
  const int64_t windows = e.windows, tokens = e.targets;
  std::string part = da.val_every > 0 ? fmt::format("held-out: every {}th document", da.val_every) : "whole file";
  const std::string path = describe_inference(mf, how);
  std::printf("perplexity %.4f  mean loss %.5f  over %lld tokens in %lld windows of %d (%s; %s)\n", ppl, loss,
              static_cast<long long>(tokens), static_cast<long long>(windows), da.seq, part.c_str(), path.c_str());
  write_report(report, {{"command", "eval"},
                        {"model", ma.model},
                        {"data", da.data},
                        {"seq", da.seq},
                        {"batch", da.batch},
                        {"val_every", da.val_every},
                        {"mean_loss", loss},
                        {"perplexity", ppl},
                        {"tokens", tokens},
                        {"windows", windows},
                        {"seconds", secs},
                        {"inference", path},
                        {"act_bits", how.act_bits},
                        {"peak_rss_bytes", peak_rss_bytes()}});
  return 0;
}

}  // namespace qtune::cli
