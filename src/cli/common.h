// cli/common.h — small helpers shared by the subcommands: opening the tokenizer that goes
// with a model, building an inference-only model, and writing JSON reports atomically.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/flags.h"
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

// "1.23M" style counts for human output.
std::string human_count(int64_t n);

}  // namespace qtune::cli
