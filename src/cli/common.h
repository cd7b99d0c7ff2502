// cli/common.h — small helpers shared by the subcommands: opening the tokenizer that goes
// with a model, building an inference-only model, and writing JSON reports atomically.
#pragma once
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/flags.h"
#include "cli/paths.h"
#include "io/ggml_blocks.h"
#include "io/gguf_model.h"
#include "io/model_file.h"
#include "io/tokenizer.h"

namespace qtune::cli {

// --tokenizer if given, else the vocabulary embedded in the (GGUF) model file. Throws Error
// when neither works, and when the tokenizer's vocabulary does not fit the model's.
std::unique_ptr<Tokenizer> open_tokenizer(const ModelArgs& a, const LlamaConfig& cfg);

// Method options for running a model without training it: every slot frozen, integer weights
// on the integer path, activations per --act-bits (auto: the model's recorded setting).
MethodOptions inference_method(const ModelFile& mf, const ActArgs& act);
// One line for humans and reports: "integer weights (35 of 35 projections), int8 activations
// (static scales)".
std::string describe_inference(const ModelFile& mf, const MethodOptions& m);

// The options that apply to m.method, as a JSON object ({"method": "qalora", "rank": 8, ...;
// keys are the flag names with '_' for '-').
nlohmann::json options_json(const MethodOptions& m);

// Writes j (pretty-printed) to path atomically; no-op when path is empty.
void write_report(const std::string& path, const nlohmann::json& j);

// The GGUF weight type for --bits: 8 → Q8_0; 4 → Q4_1 (asymmetric) or Q4_0 (--symmetric);
// 16 → F16; 32 → F32. Throws Error naming --bits otherwise.
GgmlType ggml_type_for_bits(int bits, bool symmetric);

// Writes m as a GGUF model (float weights as `type`, norms F32, integer weights exactly in their
// own layout: io/gguf_int.h), embedding the vocabulary of `tokenizer` when given, else that of
// `model_path` when it is a GGUF with one (llama.cpp needs it). Prints what the export did: the
// types of the integer weights and why some are not llama.cpp block types, the fp16 rounding of
// the block scales, and whether llama.cpp can run the file.
GgufSaveReport save_model(const ModelFile& m, const std::string& path, GgmlType type, const std::string& model_path,
                          const std::string& tokenizer = "");
// The report as JSON (for --report).
nlohmann::json export_report_json(const GgufSaveReport& r);

// IntLoRA's zero-weight defect from Llama::stats(): "intlora_zero_weight_share" (weights whose
// integer is 0, which the adapter can never move) and "intlora_lost_update_share" (the part of
// the learned update B·A, by squared norm, that falls on them); empty for other methods.
nlohmann::json intlora_stats_json(const std::map<std::string, double>& stats);

// --model and --tokenizer as inputs for check_paths (cli/paths.h), when given; a Hugging Face
// checkpoint folder as the files it is read from (model_paths).
std::vector<NamedPath> model_inputs(const ModelArgs& a);
// The files the model `model` is read from: itself, or for a Hugging Face checkpoint folder
// (io/hf_model.h) its config.json, index and shards. Throws Error when a folder has no weights.
std::vector<std::string> model_paths(const std::string& model);

// Whether path starts with the GGUF magic (without parsing it).
bool is_gguf_file(const std::string& path);
// general.architecture of a GGUF file; "" when path is not a GGUF or has no such key.
std::string gguf_architecture(const std::string& path);
// Whether path is a GGUF with general.architecture = "dit" (io/dit_file.h), not a LLaMA.
bool is_dit_gguf(const std::string& path);

// Sets the thread count of OpenMP and BLAS (0 = all cores).
void use_threads(int threads);

// "1.23M" style counts for human output.
std::string human_count(int64_t n);

}  // namespace qtune::cli
