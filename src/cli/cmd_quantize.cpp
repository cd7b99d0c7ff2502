// qtune quantize — post-training quantization baseline: a float model → GGUF Q8_0 / Q4_1 / Q4_0.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/flags.h"
#include "core/error.h"
#include "io/model_file.h"

namespace qtune::cli {

int cmd_quantize(int argc, char** argv) {
  CLI::App app{"Post-training quantization (PTQ baseline) to a GGUF with ggml block types.\n"
               "8 bits → Q8_0; 4 bits → Q4_1 (asymmetric, default) or Q4_0 (--symmetric). Norms stay F32, "
               "and so do weights whose row length is not a multiple of 32 (the output lists them).",
               "qtune quantize"};
  ModelArgs ma;
  add_model_flags(app, ma, /*with_tokenizer=*/false);
  int bits = 4, group = 32;
  bool symmetric = false;
  std::string out;
  app.add_option("--bits", bits, "bits per weight: 4 or 8 (16/32 write F16/F32)")
      ->capture_default_str()
      ->check(CLI::IsMember({4, 8, 16, 32}));
  app.add_option("--group", group, "elements per scale; GGUF blocks hold 32, so only 32 is accepted")
      ->capture_default_str()
      ->check(CLI::IsMember({32}));
  app.add_flag("--symmetric", symmetric, "4 bits: Q4_0 (scale only) instead of Q4_1 (scale + min)");
  app.add_option("--out,-o", out, "output GGUF")->required();
  QT_PARSE(app, argc, argv);

  ModelFile mf = load_model(ma.model);
  GgmlType type = ggml_type_for_bits(bits, symmetric);
  save_model(mf, out, type, ma.model);
  std::printf("wrote %s (%s weights)\n", out.c_str(), ggml_type_name(static_cast<uint32_t>(type)).c_str());
  return 0;
}

}  // namespace qtune::cli
