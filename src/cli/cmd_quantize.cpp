// qtune quantize — post-training quantization baseline: a float model → GGUF Q8_0 / Q4_1 / Q4_0;
// or, with --like ADAPTER, the exact b-bit base a qlora (or other quantized-base) adapter was
// trained on, so that llama.cpp --lora applies the adapter to the base it learned on.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <string>

#include "cli/adapter_file.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/flags.h"
#include "core/error.h"
#include "io/model_file.h"
#include "adapters/linear.h"

namespace qtune::cli {

namespace {

// Every adapter tensor "<stem>.lora_a" [r, in] / "<stem>.lora_b" [out, r] must fit <stem>.weight:
// what can be checked of an adapter that does not record its base model.
void check_adapter_fits(const TrainedAdapter& a, const std::string& adapter, const ModelFile& mf) {
  for (const auto& [name, t] : a.adapters) {
    const bool is_a = name.ends_with(".lora_a"), is_b = name.ends_with(".lora_b");
    if (!is_a && !is_b) continue;
    const std::string weight = name.substr(0, name.rfind('.')) + ".weight";
    QT_CHECK(has_float(mf, weight), "{}: adapter tensor '{}' has no weight '{}' in {} (another base model?)", adapter,
             name, weight, mf.path);
    const Shape& w = float_shape(mf, weight);
    QT_CHECK(t.shape.size() == 2 && (is_a ? t.shape[1] == w[1] : t.shape[0] == w[0]),
             "{}: adapter tensor '{}' {} does not fit {} {} of {} (another base model?)", adapter, name,
             shape_str(t.shape), weight, shape_str(w), mf.path);
  }
}

// The base quantizer `adapter` was trained with, after checking that it was trained on `model`
// (mf, loaded from it, with float projections) and that its base is the model quantized.
QuantSpec like_spec(const std::string& adapter, const std::string& model, const ModelFile& mf) {
  const TrainedAdapter a = read_trained_adapter(adapter);
  const std::string& m = a.method.method;
  QT_CHECK(a.architecture == "llama", "{}: an adapter of a {} model; --like writes a llama model's base", adapter,
           a.architecture);
  QT_CHECK(method_info(m).quantized_base, "{}: a {} adapter was trained on the float base, not a quantized one: it "
           "applies to the float model as it is (--like takes a qlora, qalora, qloldu or qaloldu adapter)", adapter, m);
  QT_CHECK(base_is_quantized_model(m), "{}: an {} adapter's base is W − R quantized (docs/METHODS.md §4.2), not the "
           "model's weights: use `qtune merge` (exact integers) instead of --like", adapter, m);
  if (a.base.fingerprint.empty()) {
    check_adapter_fits(a, adapter, mf);  // first: a refusal is one error line, no note before it
    std::fprintf(stderr, "note: %s does not record the model it was trained on: only its tensor shapes were checked "
                 "against %s\n", adapter.c_str(), model.c_str());
  } else {
    const std::string fp = base_model_id(model).fingerprint;
    QT_CHECK(fp == a.base.fingerprint, "{}: was trained on another base model ({}fingerprint {}), not {} (fingerprint "
             "{}): give --model the model it was trained on", adapter, a.base.file.empty() ? "" : a.base.file + ", ",
             a.base.fingerprint, model, fp);
  }
  return base_quant_spec(a.method);
}

// quantize --like: the seven projections of each block quantized as the training quantized its
// frozen base (every slot, targeted or not: adapters/factory.cpp), written exactly; the rest float.
int quantize_like(ModelFile& mf, const std::string& adapter, const ModelArgs& ma, const std::string& out) {
  const QuantSpec spec = like_spec(adapter, ma.model, mf);
  quantize_projections(mf, spec);
  const GgufSaveReport saved = save_model(mf, out, GgmlType::F32, ma.model, ma.tokenizer);
  double llamacpp_err = 0;
  for (const auto& t : saved.int_weights) llamacpp_err = std::max(llamacpp_err, t.llamacpp_weight_err);
  std::printf("wrote %s: the base %s was trained on, %s on the projections (embeddings, norms, classifier F32); "
              "qtune reads every projection bit for bit as the training had it\n",
              out.c_str(), adapter.c_str(), quantizer_str(spec).c_str());
  if (saved.llamacpp_loadable && llamacpp_err == 0)
    std::printf("llama.cpp reads it bit for bit too\n");
  else if (saved.llamacpp_loadable)  // the block's d (and m) is fp16; the training's scales are float32
    std::printf("llama.cpp reads its block scales rounded to fp16: weights within %.2e of each row's max of the "
                "training base\n", llamacpp_err);
  return 0;
}

}  // namespace

int cmd_quantize(int argc, char** argv) {
  CLI::App app{"Post-training quantization (the PTQ baseline) of a model's weights.\n"
               "--quantizer ggml (default): llama.cpp's own block quantizers, groups of 32: 8 bits → Q8_0, 4 bits "
               "→ Q4_1 (asymmetric) or Q4_0 (--symmetric); weights whose rows are not a multiple of 32 stay F32.\n"
               "--quantizer qtune: the quantizer the fine-tuning methods use (docs/METHODS.md §1: per row, or per "
               "--group, asymmetric unless --symmetric, min/max or --scale-search mse) on the seven projections, "
               "written exactly (block types where exact, else the I8/I16 layout). Embeddings and norms stay F32.\n"
               "--like ADAPTER: the base a qlora (qalora, qloldu, qaloldu) adapter was trained on: --model must be "
               "the model it trained on, quantized with the adapter's recorded quantizer and written exactly, so "
               "that llama.cpp --lora applies the adapter to the base it learned on.",
               "qtune quantize"};
  ModelArgs ma;
  add_model_flags(app, ma, /*with_tokenizer=*/true);  // --tokenizer: embed its vocabulary
  int bits = 4, group = -1;
  bool symmetric = false;
  std::string out, quantizer = "ggml", scale_search = "minmax", like;
  std::vector<CLI::Option*> type_flags = {
      app.add_option("--bits", bits, "bits per weight: 4 or 8 (ggml; 16/32 write F16/F32), or 2..8 (qtune)")
          ->capture_default_str()
          ->check(CLI::Range(2, 32)),
      app.add_option("--quantizer", quantizer, "ggml | qtune")->capture_default_str()->check(CLI::IsMember({"ggml", "qtune"})),
      app.add_option("--group", group, "elements per scale: ggml: 32 (its blocks); qtune: 0 = per row (default)"),
      app.add_flag("--symmetric", symmetric, "symmetric (ggml 4-bit: Q4_0 instead of Q4_1)"),
      app.add_option("--scale-search", scale_search, "qtune: minmax | mse")->capture_default_str()};
  app.add_option("--like", like, "adapter (or checkpoint) of a quantized-base method: write the exact base it was "
                 "trained on (replaces --bits, --quantizer, --group, --symmetric, --scale-search)");
  app.add_option("--out,-o", out, "output GGUF")->required();
  QT_PARSE(app, argc, argv);
  std::vector<NamedPath> in = model_inputs(ma);
  if (!like.empty()) in.push_back({"--like", like});
  check_paths(in, {{"--out", out}});
  if (!like.empty())
    for (const CLI::Option* f : type_flags)
      QT_CHECK(!f->count(), "{} does not go with --like: the adapter's recorded quantizer decides the base", f->get_name());

  if (quantizer == "ggml") {
    QT_CHECK(group == -1 || group == 32, "--group {}: ggml blocks hold 32 weights (use --quantizer qtune for others)",
             group);
    QT_CHECK(bits == 4 || bits == 8 || bits == 16 || bits == 32, "--bits {}: ggml has 4 and 8 (or 16/32 float)", bits);
  } else {
    QT_CHECK(bits >= 2 && bits <= 8, "--bits {}: the qtune quantizer takes 2..8", bits);
    QT_CHECK(scale_search == "minmax" || scale_search == "mse", "unknown --scale-search '{}' (minmax, mse)",
             scale_search);
  }
  ModelFile mf = load_model(ma.model);
  // PTQ quantizes float weights: an integer model (a merged or block-typed GGUF) is dequantized first.
  if (!mf.quantized.empty()) dequantize_all(mf);
  if (!like.empty()) return quantize_like(mf, like, ma, out);
  if (quantizer == "ggml") {
    GgmlType type = ggml_type_for_bits(bits, symmetric);
    save_model(mf, out, type, ma.model, ma.tokenizer);
    std::printf("wrote %s (%s weights)\n", out.c_str(), ggml_type_name(static_cast<uint32_t>(type)).c_str());
    return 0;
  }
  QuantSpec spec;
  spec.bits = bits;
  spec.group = std::max(group, 0);
  spec.symmetric = symmetric;
  spec.mse_search = scale_search == "mse";
  quantize_projections(mf, spec);
  save_model(mf, out, GgmlType::F32, ma.model, ma.tokenizer);
  std::printf("wrote %s (%d-bit %s, %s)\n", out.c_str(), bits, symmetric ? "symmetric" : "asymmetric",
              spec.group ? fmt::format("groups of {}", spec.group).c_str() : "per row");
  return 0;
}

}  // namespace qtune::cli
