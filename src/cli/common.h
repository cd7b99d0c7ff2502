// cli/common.h — small helpers shared by the subcommands: opening the tokenizer that goes
// with a model, building an inference-only model, and writing JSON reports atomically.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/flags.h"
#include "io/ggml_blocks.h"
#include "io/model_file.h"
#include "io/tokenizer.h"

namespace qtune::cli {

// --tokenizer if given, else the vocabulary embedded in the (GGUF) model file. Throws Error
// when neither works, and when the tokenizer's vocabulary does not fit the model's.
std::unique_ptr<Tokenizer> open_tokenizer(const ModelArgs& a, const LlamaConfig& cfg);

// Method options for running a model without training it (every slot a frozen float weight).
MethodOptions inference_method();

// Writes j (pretty-printed) to path atomically; no-op when path is empty.
void write_report(const std::string& path, const nlohmann::json& j);

// The GGUF weight type for --bits: 8 → Q8_0; 4 → Q4_1 (asymmetric) or Q4_0 (--symmetric);
// 16 → F16; 32 → F32. Throws Error naming --bits otherwise.
GgmlType ggml_type_for_bits(int bits, bool symmetric);

// Writes m as a GGUF model of `type` (norms stay F32), embedding the vocabulary of `vocab_from`
// when that is a GGUF file with one. Prints one line saying which weights stayed F32 because
// their rows are not a multiple of 32.
void save_model(const ModelFile& m, const std::string& path, GgmlType type, const std::string& vocab_from);

// Sets the thread count of OpenMP and BLAS (0 = all cores).
void use_threads(int threads);

// "1.23M" style counts for human output.
std::string human_count(int64_t n);

}  // namespace qtune::cli
