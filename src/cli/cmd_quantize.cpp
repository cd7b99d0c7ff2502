// qtune quantize — post-training quantization baseline: a float model → GGUF Q8_0 / Q4_1 / Q4_0.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/flags.h"
#include "core/error.h"
#include "io/model_file.h"
#include "adapters/linear.h"

namespace qtune::cli {

int cmd_quantize(int argc, char** argv) {
  CLI::App app{"Post-training quantization (the PTQ baseline) of a model's weights.\n"
               "--quantizer ggml (default): llama.cpp's own block quantizers, groups of 32: 8 bits → Q8_0, 4 bits "
               "→ Q4_1 (asymmetric) or Q4_0 (--symmetric); weights whose rows are not a multiple of 32 stay F32.\n"
               "--quantizer qtune: the quantizer the fine-tuning methods use (docs/METHODS.md §1: per row, or per "
               "--group, asymmetric unless --symmetric, min/max or --scale-search mse) on the seven projections, "
               "written exactly (block types where exact, else the I8/I16 layout). Embeddings and norms stay F32.",
               "qtune quantize"};
  ModelArgs ma;
  add_model_flags(app, ma, /*with_tokenizer=*/true);  // --tokenizer: embed its vocabulary
  int bits = 4, group = -1;
  bool symmetric = false;
  std::string out, quantizer = "ggml", scale_search = "minmax";
  app.add_option("--bits", bits, "bits per weight: 4 or 8 (ggml; 16/32 write F16/F32), or 2..8 (qtune)")
      ->capture_default_str()
      ->check(CLI::Range(2, 32));
  app.add_option("--quantizer", quantizer, "ggml | qtune")->capture_default_str()->check(CLI::IsMember({"ggml", "qtune"}));
  app.add_option("--group", group, "elements per scale: ggml: 32 (its blocks); qtune: 0 = per row (default)");
  app.add_flag("--symmetric", symmetric, "symmetric (ggml 4-bit: Q4_0 instead of Q4_1)");
  app.add_option("--scale-search", scale_search, "qtune: minmax | mse")->capture_default_str();
  app.add_option("--out,-o", out, "output GGUF")->required();
  QT_PARSE(app, argc, argv);
  check_paths(model_inputs(ma), {{"--out", out}});

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
