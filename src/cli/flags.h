// cli/flags.h — CLI11 glue shared by every subcommand: parse errors become exit code 2 with
// one "error:" line, --help prints and exits 0, and the flag groups several commands share
// (model/tokenizer, method, data, sampling, report) are declared once here.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "adapters/linear.h"
#include "train/trainer.h"

#define QT_PARSE(app, argc, argv)                                   \
  do {                                                              \
    try {                                                           \
      ::qtune::cli::refuse_empty_numbers(app);                      \
      (app).parse((argc), (argv));                                  \
    } catch (const CLI::CallForHelp&) {                             \
      std::fputs((app).help().c_str(), stdout);                     \
      return 0;                                                     \
    } catch (const CLI::ParseError& e) {                            \
      std::fprintf(stderr, "error: %s (see --help)\n", e.what());   \
      return 2;                                                     \
    }                                                               \
  } while (0)

namespace qtune::cli {

// CLI11 takes `--bits ""` as "not given" and keeps the default; a number option given an empty
// value is an error instead.
void refuse_empty_numbers(CLI::App& app);

// CLI11's PositiveNumber / NonNegativeNumber report "not in range 0.000000 to 1.797...e308";
// these say what is wrong in words.
inline const CLI::Validator kPositive(
    [](std::string& v) {
      double x = 0;
      if (!CLI::detail::lexical_cast(v, x) || !(x > 0)) return std::string("must be a number > 0, got ") + v;
      return std::string();
    },
    "POSITIVE");
inline const CLI::Validator kNonNegative(
    [](std::string& v) {
      double x = 0;
      if (!CLI::detail::lexical_cast(v, x) || !(x >= 0)) return std::string("must be a number >= 0, got ") + v;
      return std::string();
    },
    "NONNEGATIVE");

// --model M [--tokenizer T]
struct ModelArgs {
  std::string model;
  std::string tokenizer;  // empty: the vocabulary embedded in a GGUF model
};
// `model_required` = false for commands that can create a model (--init random).
void add_model_flags(CLI::App& app, ModelArgs& a, bool with_tokenizer = true, bool model_required = true);

// --method and every option MethodOptions declares (adapters/method_options.h), with help,
// default and the methods each is for. Values are checked by validate() after parsing.
using MethodFlags = std::vector<std::pair<CLI::Option*, const OptionInfo*>>;
MethodFlags add_method_flags(CLI::App& app, MethodOptions& m);
// A flag given for a method it does not apply to is an error, even at its default value
// (e.g. --symmetric with --method lora).
void refuse_inapplicable_flags(const MethodFlags& flags, const MethodOptions& m);

// --data F [--val-file V] --seq --batch --val-every --max-batches
struct DataArgs {
  std::string data;
  std::string val_file;
  int seq = 64;
  int batch = 4;
  int val_every = 0;    // hold out every K-th document of --data (0: none)
  int max_batches = 0;  // eval: stop after this many batches (0: all)
};
void add_data_flags(CLI::App& app, DataArgs& d, bool with_val_file);

// Optimizer, schedule, validation and checkpoint flags of finetune (--steps --lr --min-lr
// --warmup --schedule --grad-accum --clip --weight-decay --seed --eval-every --eval-batches
// --save-every --checkpoint --resume --threads --quiet). --schedule goes to `schedule`
// (parse it with parse_schedule after QT_PARSE). `zero_steps`: --steps 0 is accepted (finetune:
// write the initial adapter, e.g. --init-adapter's, without training).
void add_train_flags(CLI::App& app, TrainOptions& t, std::string& schedule, bool zero_steps = false);

// After QT_PARSE, for a training command: refuses inapplicable method flags, validates the
// method, canonicalises its --gemm spec (so a resume compares meaning, not spelling), and gives
// `t` the method, the method's default --lr unless given, and the parsed --schedule.
void finish_method_and_train(const CLI::App& app, const MethodFlags& flags, MethodOptions& m, TrainOptions& t,
                             const std::string& schedule);

// --act-bits auto|0|8 --act-dynamic: how eval and generate run a model's activations.
struct ActArgs {
  std::string bits = "auto";  // auto: as the model was fine-tuned (recorded by merge)
  bool dynamic = false;       // per-token int8 scales even where static ones are recorded
};
void add_act_flags(CLI::App& app, ActArgs& a);

// --report R.json
void add_report_flag(CLI::App& app, std::string& report);
// --threads N (0 = all cores)
void add_threads_flag(CLI::App& app, int& threads);

}  // namespace qtune::cli
