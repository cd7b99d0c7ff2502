// qtune merge — fold an adapter into its base model and write the deployable GGUF.
//
//   qalora, intlora-mul, intlora-shift → integer weights, EXACTLY what the training forward used
//     (no post-training quantization); Q4_1 / Q4_0 / Q8_0 where that is exact, else the I8/I16/I32
//     + F32-scale layout (io/gguf_model.h). --bits does not apply.
//   lora, qlora → float weights; with --bits 4|8, post-training quantization of the merged weights
//     (the baseline the integer methods are measured against). qlora: in its base's format (the
//     adapter's --group/--symmetric/--scale-search unless given here), and its frozen slots keep
//     their quantized base when the formats agree. lora: per row, asymmetric at 4 bits (exact
//     Q4_1) and symmetric at 8 (exact Q8_0), so the result runs in llama.cpp.
//     Embeddings and norms stay F32.
// --tokenizer embeds the vocabulary (llama.cpp needs it; a GGUF base's own is used otherwise).
// The activation setting the adapter was trained with (--act-bits, calibrated scales) is recorded
// in the model, so eval/generate run it as it trained.
// A DiT (general.architecture = dit) merges the same way into a DiT GGUF: every slot of the DiT,
// integer methods exactly, float ones in F32 or PTQ'd by --bits (docs/DESIGN.md §11.2).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/adapter_file.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/flags.h"
#include "core/error.h"
#include "io/dit_file.h"
#include "io/model_file.h"
#include "models/dit.h"
#include "models/llama.h"

namespace qtune::cli {

namespace {

bool same_format(const QuantSpec& a, const QuantSpec& b) {
  return a.bits == b.bits && a.group == b.group && a.symmetric == b.symmetric && a.mse_search == b.mse_search &&
         a.zero_free == b.zero_free;
}

// PTQ of every projection of m to `spec`; planes already in that format are kept as they are.
void post_training_quantize(ModelFile& m, const QuantSpec& spec, const QuantSpec& base_spec) {
  for (auto it = m.quantized.begin(); it != m.quantized.end();) {
    if (it->second.size() == 1 && same_format(spec, base_spec)) {
      ++it;
      continue;
    }
    m.tensors[it->first] = weight_as_float(m, it->first);
    it = m.quantized.erase(it);
  }
  quantize_projections(m, spec);
  QT_ASSERT(static_cast<int>(m.quantized.size()) == m.config.n_layers * kNumProjections);
}

// PTQ of every slot weight of a merged DiT to `spec` (the baseline the integer methods beat);
// weights already in that format (qlora's frozen slots) are kept as they are.
void post_training_quantize(DitFile& f, const QuantSpec& spec, const QuantSpec& base_spec) {
  for (const std::string& stem : dit_slot_stems(f.config)) {
    const std::string name = stem + ".weight";
    if (auto q = f.quantized.find(name); q != f.quantized.end()) {
      if (q->second.size() == 1 && same_format(spec, base_spec)) continue;
      f.tensors[name] = dit_weight_as_float(f, name);
      f.quantized.erase(q);
    }
    const Tensor& w = f.tensors.at(name);
    std::vector<QuantMatrix> planes;
    planes.push_back(quantize(w.ptr(), w.shape[0], w.shape[1], spec));
    f.quantized[name] = std::move(planes);
    f.tensors.erase(name);
  }
}

struct PtqArgs {
  int bits = 32, group = -1;
  bool symmetric = false;
  std::string scale_search;
};

// A DiT adapter (from `dit-train`) into its DiT GGUF: integer methods exactly into their
// integers, float methods into F32 or, with --bits, by post-training quantization — as for a LLaMA.
int merge_dit(const ModelArgs& ma, const std::string& adapter, const std::string& out, const std::string& report,
              const PtqArgs& ptq_args) {
  DitFile f = load_dit(ma.model);
  const TrainedAdapter a = read_trained_adapter(adapter);
  QT_CHECK(a.architecture == "dit" || a.kind == "checkpoint", "{}: an adapter of a {} model cannot merge into the DiT {}",
           adapter, a.architecture, ma.model);
  QT_CHECK(f.quantized.empty(), "{}: the base DiT has integer weights; merge into the float DiT the adapter was "
                                "trained on", ma.model);
  const bool integer = is_integer_method(a.method.method);
  QT_CHECK(!(integer && ptq_args.bits <= 8), "{}: a {} adapter merges exactly into its own {}-bit integers; --bits "
                                             "(post-training quantization) does not apply",
           adapter, a.method.method, a.method.bits);
  QT_CHECK(ptq_args.bits != 16, "--bits 16: a DiT is written as F32 or integers (--bits 4|8)");
  Dit<float> model(f, float_arithmetic(a.method), a.seed, /*train_class_embedding=*/a.adapters.count("y_embd.weight") > 0);
  f = DitFile{};  // the model holds its own copy
  load_adapter_params(model.trainable(), model.state(), a, adapter);
  DitFile merged = model.merged();
  std::string what;
  if (integer) {
    what = fmt::format("exact {}-bit integer merge", a.method.bits);
  } else if (ptq_args.bits <= 8) {
    MethodOptions ptq = a.method;
    ptq.bits = ptq_args.bits;
    if (!has_quantized_base(a.method.method)) ptq.symmetric = ptq_args.bits == 8;
    if (ptq_args.group >= 0) ptq.group = ptq_args.group;
    if (ptq_args.symmetric) ptq.symmetric = true;
    if (!ptq_args.scale_search.empty()) ptq.scale_search = ptq_args.scale_search;
    validate(ptq);
    post_training_quantize(merged, base_quant_spec(ptq), base_quant_spec(a.method));
    what = fmt::format("float merge + {}-bit post-training quantization", ptq_args.bits);
  } else {
    for (auto& [name, planes] : merged.quantized) merged.tensors[name] = dit_weight_as_float(merged, name);
    merged.quantized.clear();
    what = "float merge (F32)";
  }
  save_dit(out, merged);
  write_report(report, {{"command", "merge"}, {"model", ma.model}, {"adapter", adapter}, {"out", out},
                        {"method", a.method.method}, {"merge", what}, {"architecture", "dit"},
                        {"bits", integer ? a.method.bits : ptq_args.bits}, {"act_bits", merged.act.bits},
                        {"integer_slots", merged.quantized.size()}});
  std::printf("merged %s (%s, rank %s, %zu tensors) into %s → %s (%s%s)\n", adapter.c_str(), a.method.method.c_str(),
              rank_str(a.method.rank).c_str(), a.adapters.size(), ma.model.c_str(), out.c_str(), what.c_str(),
              merged.act.bits == 8 ? ", int8 activations recorded" : "");
  return 0;
}

}  // namespace

int cmd_merge(int argc, char** argv) {
  CLI::App app{"Merge an adapter (from `qtune finetune`, a training checkpoint, or a llama.cpp LoRA GGUF) into its "
               "base model. qalora / intlora-mul / intlora-shift / qaloldu merge exactly into integer weights (no "
               "PTQ); lora / qlora / loldu / qloldu merge into float weights, or with --bits into b-bit integers by "
               "post-training quantization.",
               "qtune merge"};
  ModelArgs ma;
  add_model_flags(app, ma, /*with_tokenizer=*/true);
  std::string adapter, out, scale_search, report;
  int bits = 32, group = -1;
  bool symmetric = false;
  app.add_option("--adapter,-a", adapter, "adapter GGUF or training checkpoint")->required();
  app.add_option("--out,-o", out, "merged model GGUF")->required();
  auto* bits_opt = app.add_option("--bits", bits,
                                  "lora/qlora: 4 or 8 = post-training quantization of the merged weights; "
                                  "16 = F16, 32 = F32 (float)")
                       ->capture_default_str()
                       ->check(CLI::IsMember({4, 8, 16, 32}));
  app.add_option("--group", group, "with --bits 4|8: group size (0 = per row; default: the adapter's)")
      ->check(kNonNegative);
  app.add_flag("--symmetric", symmetric, "with --bits 4|8: symmetric quantization (default: the adapter's)");
  app.add_option("--scale-search", scale_search, "with --bits 4|8: minmax | mse (default: the adapter's)");
  add_report_flag(app, report);
  QT_PARSE(app, argc, argv);
  std::vector<NamedPath> in = model_inputs(ma), outs = {{"--out", out}};
  in.push_back({"--adapter", adapter});
  if (!report.empty()) outs.push_back({"--report", report});
  check_paths(in, outs);
  QT_CHECK(bits <= 8 || (group < 0 && !symmetric && scale_search.empty()),
           "--group, --symmetric and --scale-search go with --bits 4 or 8");
  if (is_dit_gguf(ma.model)) {
    QT_CHECK(ma.tokenizer.empty(), "{}: a DiT has no vocabulary; --tokenizer does not apply", ma.model);
    return merge_dit(ma, adapter, out, report, {bits, group, symmetric, scale_search});
  }

  ModelFile mf = load_model(ma.model);
  TrainedAdapter a = read_trained_adapter(adapter);
  QT_CHECK(a.architecture == "llama", "{}: an adapter of a {} model cannot merge into the llama model {}", adapter,
           a.architecture, ma.model);
  const bool integer = is_integer_method(a.method.method);
  QT_CHECK(!(integer && bits_opt->count()), "{}: a {} adapter merges exactly into its own {}-bit integers; --bits "
                                            "(post-training quantization) does not apply",
           adapter, a.method.method, a.method.bits);
  Llama model(mf, float_arithmetic(a.method), a.seed);
  mf.tensors.clear();  // the model holds its own copy
  mf.quantized.clear();
  load_adapter_into(model, a, adapter);
  int64_t inexact = 0;
  ModelFile merged = model.merged(&inexact);

  std::string what;
  if (integer) {
    what = fmt::format("exact {}-bit integer merge", a.method.bits);
  } else if (bits <= 8) {
    MethodOptions ptq = a.method;
    ptq.bits = bits;
    if (!has_quantized_base(a.method.method)) ptq.symmetric = bits == 8;
    if (group >= 0) ptq.group = group;
    if (symmetric) ptq.symmetric = true;
    if (!scale_search.empty()) ptq.scale_search = scale_search;
    validate(ptq);
    post_training_quantize(merged, base_quant_spec(ptq), base_quant_spec(a.method));
    what = fmt::format("float merge + {}-bit post-training quantization", bits);
  } else {
    dequantize_all(merged);
    what = bits == 16 ? "float merge (F16)" : "float merge (F32)";
  }
  if (inexact > 0)
    std::fprintf(stderr, "note: %lld weights had to be rounded by the integer merge (IntLoRA-SHIFT rows whose "
                 "exponents span more than 29 bits)\n", static_cast<long long>(inexact));
  GgufSaveReport saved = save_model(merged, out, bits == 16 ? GgmlType::F16 : GgmlType::F32, ma.model, ma.tokenizer);
  nlohmann::json j = export_report_json(saved);
  j.update({{"command", "merge"}, {"model", ma.model}, {"adapter", adapter}, {"out", out}, {"method", a.method.method},
            {"merge", what}, {"bits", integer ? a.method.bits : bits}, {"act_bits", merged.act_bits},
            {"inexact_weights", inexact}});
  j.update(intlora_stats_json(model.stats()));
  write_report(report, j);
  std::printf("merged %s (%s, rank %s, %zu tensors) into %s → %s (%s%s)\n", adapter.c_str(),
              a.method.method.c_str(), rank_str(a.method.rank).c_str(), a.adapters.size(), ma.model.c_str(), out.c_str(), what.c_str(),
              merged.act_bits == 8 ? ", int8 activations recorded" : "");
  return 0;
}

}  // namespace qtune::cli
