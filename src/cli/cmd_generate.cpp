// qtune generate — sample from a model with a KV cache; prints text, or the new token ids, and
// one stderr line of speeds (prefill and decode tokens per second; --report: as JSON).
#include <omp.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/flags.h"
#include "core/error.h"
#include "io/model_file.h"
#include "models/llama.h"

namespace qtune::cli {

namespace {

void print_ids(const std::vector<int>& ids) {
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
  std::printf("%s\n", line.c_str());
}

void print_text(const Tokenizer& tok, const std::string& prompt, int last_prompt_id, const std::vector<int>& ids) {
  std::string text = prompt;
  int prev = last_prompt_id;
  for (int id : ids) {
    if (id == tok.eos_id()) break;
    text += tok.decode(prev, id);
    prev = id;
  }
  std::printf("%s\n", text.c_str());
}

double per_second(int n, double secs) { return secs > 0 ? n / secs : 0.0; }

}  // namespace

int cmd_generate(int argc, char** argv) {
  CLI::App app{"Generate text from a model (greedy with --temperature 0).", "qtune generate"};
  ModelArgs ma;
  add_model_flags(app, ma);
  std::string prompt;
  int max_tokens = 64;
  SamplerOptions s;
  bool ids = false, quiet = false;
  int threads = 0;
  std::string report;
  app.add_option("--prompt,-p", prompt, "prompt text (\"\" starts from BOS alone)")->capture_default_str();
  app.add_option("--max-tokens,-n", max_tokens, "number of tokens to generate (stops early at EOS)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--temperature", s.temperature, "sampling temperature (0 = greedy)")
      ->capture_default_str()
      ->check(CLI::Range(0.0f, 100.0f));
  app.add_option("--top-p", s.top_p, "nucleus sampling: keep the smallest set of tokens with this mass")
      ->capture_default_str()
      ->check(CLI::Range(0.0f, 1.0f));
  app.add_option("--seed", s.seed, "sampling seed")->capture_default_str();
  app.add_flag("--ids", ids, "print the generated token ids (space-separated) instead of text");
  add_threads_flag(app, threads);
  add_report_flag(app, report);
  app.add_flag("--quiet,-q", quiet, "no speed line on stderr");
  ActArgs act;
  add_act_flags(app, act);
  QT_PARSE(app, argc, argv);
  std::vector<NamedPath> out_paths;
  if (!report.empty()) out_paths.push_back({"--report", report});
  check_paths(model_inputs(ma), out_paths);
  use_threads(threads);
  QT_CHECK(s.top_p > 0.0f, "--top-p must be in (0, 1], got {}", s.top_p);

  ModelFile mf = open_model(ma.model);  // float weights streamed as the model is built
  auto tok = open_tokenizer(ma, mf.config);
  std::vector<int> prompt_ids =
      prompt.empty() ? std::vector<int>{tok->bos_id()} : tok->encode(prompt, /*bos=*/true, /*eos=*/false);
  QT_CHECK(static_cast<int>(prompt_ids.size()) < mf.config.seq_len,
           "--prompt: {} tokens do not fit the model's context of {} tokens", prompt_ids.size(), mf.config.seq_len);
  const int room = mf.config.seq_len - static_cast<int>(prompt_ids.size());
  QT_CHECK(max_tokens <= room, "--max-tokens {}: the model's context is {} tokens and the prompt takes {}, so at most {} "
           "can be generated", max_tokens, mf.config.seq_len, prompt_ids.size(), room);
  Llama model(mf, inference_method(mf, act), s.seed);
  GenerateStats st;
  std::vector<int> out = generate(model, prompt_ids, max_tokens, s, &st);
  if (ids)
    print_ids(out);
  else
    print_text(*tok, prompt, prompt_ids.back(), out);
  const double prompt_tps = per_second(st.prompt_tokens, st.prompt_seconds);
  const double decode_tps = per_second(st.decode_steps, st.decode_seconds);
  if (!quiet)
    std::fprintf(stderr, "prompt %d tokens at %.1f tok/s, generated %d tokens at %.1f tok/s (%d threads)\n",
                 st.prompt_tokens, prompt_tps, st.gen_tokens, decode_tps, omp_get_max_threads());
  write_report(report, {{"command", "generate"},
                        {"model", ma.model},
                        {"threads", omp_get_max_threads()},
                        {"prompt_tokens", st.prompt_tokens},
                        {"prompt_seconds", st.prompt_seconds},
                        {"prompt_tok_s", prompt_tps},
                        {"gen_tokens", st.gen_tokens},
                        {"decode_steps", st.decode_steps},
                        {"decode_seconds", st.decode_seconds},
                        {"decode_tok_s", decode_tps}});
  return 0;
}

}  // namespace qtune::cli
