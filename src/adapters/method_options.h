// adapters/method_options.h — the fine-tuning methods and their options, each declared once.
//
// MethodOptions::for_each visits every option together with its declaration (OptionInfo: flag
// name, help, the methods it applies to, the values it accepts; the default is the member's
// initializer). Everything else is derived from that one list, never written out again:
//   - the CLI flags and their help (cli/flags.cpp),
//   - validation (validate: ranges, choices, "does not apply to this method"),
//   - the run settings recorded in adapter files and checkpoints and read back
//     (settings_of / options_from_settings: key "qtune.run.<name>" = the value as a string),
//   - the report JSON (cli).
// Adding an option is one field and one line in visit_options.
#pragma once
#include <cmath>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "io/adapter_file.h"
#include "io/projections.h"
#include "quant/gse.h"
#include "quant/quant.h"

namespace qtune {

// Which methods an option means something for.
enum class Applies {
  all,
  adapter,         // every method that trains an adapter (all but full)
  lora_scale,      // lora, qlora: the alpha/rank scale of the B·A branch
  alpha,           // lora, qlora (alpha/rank scales B·A) and the LoLDU methods (σ starts at alpha/rank)
  quantized_base,  // the base is stored b-bit
  qalora,
  intlora,         // intlora-mul, intlora-shift
  loldu,           // loldu, qloldu, qaloldu
  gse_gemm,        // full, lora, qlora: the GEMMs GSQ-Tuning's --gemm gse:... runs in integers
};

struct MethodInfo {
  const char* name;
  bool adapter;         // trains an adapter, the base stays frozen
  bool lora_scale;      // the adapter branch is (alpha/rank)·B·A
  bool quantized_base;  // the frozen base is b-bit integers
  bool integer;         // merges exactly into integers (no PTQ)
  bool intlora;
  bool loldu;           // the LDU-slice adapter (adapters/loldu.h)
  // Accepts --gemm gse:... (GSQ-Tuning, docs/METHODS.md §9): every GEMM of the slot is a plain
  // product of its weight (and low-rank factors) with the activations. The methods that rebuild
  // a re-quantized or multiplicative weight every pass (qalora, intlora-*, the LoLDU family) do
  // not: their GEMMs would run on a weight that is re-encoded per pass, which is not written.
  bool gse_gemm;
  // The default --lr: the best of the 400-step KJV sweep (bench/integer_kjv.sh sweep;
  // bench/results/{integer_kjv_sweep,full_lr_sweep}.json; README "Learning rates"), so that a
  // run with default flags is a fair one.
  float default_lr;
};

// Every method, in --help order.
const std::vector<MethodInfo>& methods();
// Throws Error naming the valid methods for an unknown name.
const MethodInfo& method_info(const std::string& name);
bool applies(Applies a, const MethodInfo& m);
// The methods an option applies to in words ("qalora", "lora and qlora", ...), for messages and --help.
std::string applies_str(Applies a);

// --rank full: the slot's min(out, in), resolved per weight (adapters/factory.cpp).
constexpr int kFullRank = -1;

struct OptionInfo {
  const char* name;          // --<name>; run setting "qtune.run.<name>"; report key with '-' → '_'
  const char* help;
  Applies applies = Applies::all;
  const char* alias = nullptr;       // short flag, e.g. "-r"
  double min = -HUGE_VAL;            // numbers: valid closed range
  double max = HUGE_VAL;
  bool positive = false;             // numbers: also > 0
  std::vector<std::string> choices = {};  // strings, ints, list items: the valid values ({} = any)
  // ints: words that stand for a value outside [min, max] ({"full", kFullRank}); the flag, the
  // run setting and the report use the word.
  std::vector<std::pair<std::string, int>> named = {};
  // Options added after adapter files and checkpoints already existed: the value a file that
  // has no key for the option was made with (such files predate it), so they still load.
  // nullptr: the key must be present (a missing key is an error, never a default).
  const char* predates = nullptr;
};

// How to build the slots of a model being trained, from finetune's flags.
struct MethodOptions {
  std::string method = "lora";
  int rank = 8;
  float alpha = 16.0f;
  int bits = 4;
  int group = 0;
  bool symmetric = false;
  std::string scale_search = "auto";
  std::vector<std::string> targets = {"q", "k", "v", "o", "gate", "up", "down"};
  int act_bits = 0;
  int act_calib = 8;
  float scale_lr = 0.1f;
  bool lsq_grad_scale = false;
  std::string vmc = "abs-max";
  float vmc_alpha = 1.5f;
  bool zero_free = false;
  std::string loldu_init = "uniform";
  bool loldu_train_scale = false;
  std::string gemm = "f32";       // f32 | gse:<spec> (quant/gse.h parse_gemm_mode)
  std::string save_act = "f32";   // f32 | gse: how the activations kept for backward are stored
  bool gemm_attention = false;    // --gemm gse also for attention's q·kᵀ and p·v
  bool recompute = false;         // keep only each block's input; backward re-runs the block's forward
  // every sequence computed as if alone and the adapters' gradients summed exactly per sequence
  // (kernels::RowsPerSample, adapters/exact_grad.cpp): results independent of the batch's split
  bool exact_sums = false;

  // Run modes, not options of a training run (never recorded): inference (eval, generate)
  // builds every slot frozen (make_inference_linear), with no gradient buffers, whatever
  // `method` says; act_dynamic then ignores recorded static activation scales.
  bool frozen = false;
  bool act_dynamic = false;

  // v(field, const OptionInfo&) for every option, in --help order.
  template <class V>
  void for_each(V&& v) { visit_options(*this, v); }
  template <class V>
  void for_each(V&& v) const { visit_options(*this, v); }

  bool operator==(const MethodOptions&) const = default;

 private:
  template <class Self, class V>
  static void visit_options(Self& o, V& v);
};

// ---- derived from the declarations --------------------------------------------------------

// Throws Error for an unknown method and a value out of its range or choices. (Options that do
// not apply to the method are ignored here; the CLI refuses them: cli/flags.h.)
void validate(const MethodOptions& o);
// The options that apply to o.method, as run settings ({"method", "qalora"}, {"rank", "8"}, ...).
RunSettings settings_of(const MethodOptions& o);
// The inverse: every option that applies to the recorded method must be present (else the file
// is from another version or was edited: Error naming `where` and the key). Keys that are not
// method options (seed, batch, ...) are ignored.
MethodOptions options_from_settings(const RunSettings& s, const std::string& where);

// One option value as its run-setting string, and back (Error on a malformed value).
std::string option_value_str(const std::string& v);
std::string option_value_str(int v);
std::string option_value_str(float v);
std::string option_value_str(bool v);
std::string option_value_str(const std::vector<std::string>& v);  // comma-separated
void parse_option_value(const std::string& s, std::string& out);
void parse_option_value(const std::string& s, int& out);
void parse_option_value(const std::string& s, float& out);
void parse_option_value(const std::string& s, bool& out);
void parse_option_value(const std::string& s, std::vector<std::string>& out);
// The same with an option's named values (OptionInfo::named) in words.
template <class T>
std::string option_value_str(const T& v, const OptionInfo& info) {
  if constexpr (std::is_same_v<T, int>)
    for (const auto& [word, value] : info.named)
      if (v == value) return word;
  return option_value_str(v);
}
template <class T>
void parse_option_value(const std::string& s, T& out, const OptionInfo& info) {
  if constexpr (std::is_same_v<T, int>)
    for (const auto& [word, value] : info.named)
      if (s == word) {
        out = value;
        return;
      }
  parse_option_value(s, out);
}
// "8", or "full" for kFullRank.
std::string rank_str(int rank);

// Method properties by name (throw Error for an unknown method).
inline bool is_integer_method(const std::string& m) { return method_info(m).integer; }
inline bool is_intlora(const std::string& m) { return method_info(m).intlora; }
inline bool has_quantized_base(const std::string& m) { return method_info(m).quantized_base; }
// The base quantizer of these options (bits, group, symmetry, resolved scale search).
QuantSpec base_quant_spec(const MethodOptions& opts);
// --gemm parsed (validate has checked it).
GemmMode gemm_mode(const MethodOptions& opts);
// The same options with float GEMMs and float saved activations: how a run computed its
// products is not part of what it trained (merge adds the trained B·A to the float or b-bit
// base either way), so merge builds its model with these and never encodes a weight.
MethodOptions float_arithmetic(MethodOptions opts);

// ---- the declarations ----------------------------------------------------------------------

std::vector<std::string> method_names();

template <class Self, class V>
void MethodOptions::visit_options(Self& o, V& v) {
  using A = Applies;
  static const OptionInfo kMethod{.name = "method", .help = "fine-tuning method", .choices = method_names()};
  static const OptionInfo kRank{.name = "rank", .help = "adapter rank, or full: min(out, in) of each weight",
                                .applies = A::adapter, .alias = "-r", .min = 1, .max = 1 << 20,
                                .named = {{"full", kFullRank}}};
  static const OptionInfo kAlpha{.name = "alpha",
                                 .help = "LoRA alpha: the B·A branch is scaled by alpha/rank (LoLDU: the scale "
                                         "sigma starts at alpha/rank)",
                                 .applies = A::alpha, .positive = true};  // 0 would train a no-op
  static const OptionInfo kBits{.name = "bits", .help = "bits of the quantized base", .applies = A::quantized_base,
                                .min = 2, .max = 8};
  static const OptionInfo kGroup{.name = "group",
                                 .help = "quantization group size along the input dim (0 = one scale per row)",
                                 .applies = A::quantized_base, .min = 0, .max = 1 << 30};
  static const OptionInfo kSymmetric{.name = "symmetric", .help = "symmetric quantization of the base "
                                     "(default: asymmetric)", .applies = A::quantized_base};
  static const OptionInfo kScaleSearch{.name = "scale-search",
                                       .help = "base quantizer range: auto (mse for intlora-*, else minmax) | "
                                               "minmax | mse",
                                       .applies = A::quantized_base, .choices = {"auto", "minmax", "mse"}};
  static const OptionInfo kTarget{.name = "target",
                                  .help = "comma-separated projections that get an adapter (full: that are "
                                          "trained): q,k,v,o,gate,up,down",
                                  .choices = projection_targets()};
  static const OptionInfo kActBits{.name = "act-bits",
                                   .help = "quantize every projection's input activations: 0 = float, 8 = int8 "
                                           "per tensor (W8A8, W4A8)",
                                   .choices = {"0", "8"}};
  static const OptionInfo kActCalib{.name = "act-calib",
                                    .help = "with --act-bits 8: training micro-batches that calibrate the scales",
                                    .min = 1, .max = 1 << 30};
  static const OptionInfo kScaleLr{.name = "scale-lr",
                                   .help = "learning rate of the learned scales as a fraction of --lr (they train "
                                           "as multipliers of their initial values; no weight decay)",
                                   .applies = A::qalora, .min = 0};
  static const OptionInfo kLsq{.name = "lsq-grad-scale",
                               .help = "scale the learned step size's gradient by 1/sqrt(N*Qp) (LSQ; not in the "
                                       "reference)",
                               .applies = A::qalora};
  static const OptionInfo kVmc{.name = "vmc",
                               .help = "variance matching rule of R: abs-max (reference code) | std (paper)",
                               .applies = A::intlora, .choices = {"abs-max", "std"}};
  static const OptionInfo kVmcAlpha{.name = "vmc-alpha", .help = "VMC exponent alpha", .applies = A::intlora,
                                    .positive = true};
  static const OptionInfo kZeroFree{.name = "zero-free",
                                    .help = "quantize the base on a grid without 0, so every weight can be adapted",
                                    .applies = A::intlora};
  static const OptionInfo kLolduInit{.name = "loldu-init",
                                     .help = "initial z: lu (the pivots d) | uniform (U(-|mu|/2, |mu|/2), mu = "
                                             "mean(d): the paper's best) | constant (mu) | normal (N(mu, std(d)))",
                                     .applies = A::loldu, .choices = {"lu", "uniform", "constant", "normal"}};
  static const OptionInfo kLolduTrainScale{.name = "loldu-train-scale",
                                           .help = "train the scalar sigma too (the paper; its released code trains "
                                                   "z only)",
                                           .applies = A::loldu};
  static const OptionInfo kGemm{.name = "gemm",
                                .help = "arithmetic of every GEMM of forward and backward (the slots' base and "
                                        "adapter products, the classifier): f32 | bf16 (operands rounded to bfloat16, float sums: "
                                        "AVX512-BF16 CPUs, training steps only) | gse:b=8,g=32[,e=8][,rule=mx]"
                                        "[,round=stochastic] (GSQ-Tuning: group-shared-exponent integers, int32 "
                                        "group sums; b 4..8, g 16|32|64|128; stochastic rounds the gradients)",
                                .applies = A::gse_gemm, .predates = "f32"};
  static const OptionInfo kSaveAct{.name = "save-act",
                                   .help = "storage of the activations kept for backward: f32 | gse (GSE-INT8, "
                                           "groups of 32: ~3.8x smaller, decoded when backward needs them)",
                                   .choices = {"f32", "gse"}, .predates = "f32"};
  static const OptionInfo kGemmAttention{.name = "gemm-attention",
                                         .help = "with --gemm gse: attention's score (q·kᵀ) and value (p·v) "
                                                 "products in GSE too",
                                         .applies = A::gse_gemm, .predates = "false"};
  static const OptionInfo kRecompute{.name = "recompute",
                                     .help = "activation checkpointing: keep only each block's input for "
                                             "backward, which re-runs the block's forward (the same gradients, "
                                             "far less memory, ~1/3 more compute in the blocks)",
                                     .predates = "false"};
  static const OptionInfo kExactSums{.name = "exact-sums",
                                     .help = "results independent of how the batch is split over MPI ranks: each "
                                             "sequence computed as if alone and the adapter's gradients summed "
                                             "exactly per sequence, so 2 ranks x --batch b write what 1 process x "
                                             "2b writes, bit for bit (costs 0-5 % of a lora or qlora step, more "
                                             "for the re-quantizing methods: qalora 9-14 %)",
                                     .applies = A::adapter, .predates = "false"};
  v(o.method, kMethod);
  v(o.rank, kRank);
  v(o.alpha, kAlpha);
  v(o.bits, kBits);
  v(o.group, kGroup);
  v(o.symmetric, kSymmetric);
  v(o.scale_search, kScaleSearch);
  v(o.targets, kTarget);
  v(o.act_bits, kActBits);
  v(o.act_calib, kActCalib);
  v(o.scale_lr, kScaleLr);
  v(o.lsq_grad_scale, kLsq);
  v(o.vmc, kVmc);
  v(o.vmc_alpha, kVmcAlpha);
  v(o.zero_free, kZeroFree);
  v(o.loldu_init, kLolduInit);
  v(o.loldu_train_scale, kLolduTrainScale);
  v(o.gemm, kGemm);
  v(o.save_act, kSaveAct);
  v(o.gemm_attention, kGemmAttention);
  v(o.recompute, kRecompute);
  v(o.exact_sums, kExactSums);
}

}  // namespace qtune
