#include "cli/common.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <type_traits>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <vector>

#include "core/error.h"
#include "core/file.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "io/gguf_tokenizer.h"
#include "io/hf_model.h"
#include "kernels/gemm.h"

namespace qtune::cli {

std::unique_ptr<Tokenizer> open_tokenizer(const ModelArgs& a, const LlamaConfig& cfg) {
  std::unique_ptr<Tokenizer> tok;
  std::string from = a.tokenizer.empty() ? a.model : a.tokenizer;
  const std::string hf_tokenizer = a.tokenizer.empty() ? hf_tokenizer_path(a.model) : "";
  if (!a.tokenizer.empty()) {
    tok = load_tokenizer(a.tokenizer);
  } else if (!hf_tokenizer.empty()) {  // a Hugging Face checkpoint folder's own tokenizer.model
    tok = load_tokenizer(from = hf_tokenizer);
  } else if (hf_checkpoint_dir(a.model)) {
    fail("{}: the checkpoint folder has no tokenizer.model; pass --tokenizer", a.model);
  } else {
    try {
      tok = load_tokenizer(a.model);
    } catch (const Error&) {
      fail("{}: the model has no embedded vocabulary; pass --tokenizer", a.model);
    }
  }
  QT_CHECK(tok->vocab_size() <= cfg.vocab_size,
           "{}: tokenizer has {} tokens but the model's vocabulary has {} (shape mismatch: wrong tokenizer?)",
           from, tok->vocab_size(), cfg.vocab_size);
  return tok;
}

MethodOptions inference_method(const ModelFile& mf, const ActArgs& act) {
  MethodOptions m;
  m.frozen = true;  // no trainable params, no gradient buffers
  m.act_bits = act.bits == "auto" ? mf.act_bits : std::stoi(act.bits);
  m.act_dynamic = act.dynamic;
  QT_CHECK(!act.dynamic || m.act_bits == 8, "--act-dynamic needs int8 activations (--act-bits 8, or a model "
                                            "fine-tuned with them)");
  return m;
}

std::string describe_inference(const ModelFile& mf, const MethodOptions& m) {
  const size_t n_proj = static_cast<size_t>(mf.config.n_layers) * kNumProjections;
  std::string w = mf.quantized.empty() ? "float weights"
                                        : fmt::format("integer weights ({} of {} projections)", mf.quantized.size(), n_proj);
  std::string a = "float activations";
  if (m.act_bits == 8)
    a = m.act_dynamic || mf.act_scales.empty() ? "int8 activations (per-token scales)"
                                               : fmt::format("int8 activations (static scales, {} recorded)",
                                                             mf.act_scales.size());
  return w + ", " + a;
}

nlohmann::json options_json(const MethodOptions& m) {
  nlohmann::json j = nlohmann::json::object();
  const MethodInfo& method = method_info(m.method);
  m.for_each([&](const auto& value, const OptionInfo& info) {
    if (!applies(info.applies, method)) return;
    std::string key = info.name;
    std::replace(key.begin(), key.end(), '-', '_');
    using V = std::decay_t<decltype(value)>;
    if constexpr (std::is_same_v<V, float>)
      j[key] = std::stod(option_value_str(value));  // 0.1, not the float's 0.10000000149011612
    else if constexpr (std::is_same_v<V, int>)
      if (option_value_str(value, info) != option_value_str(value)) j[key] = option_value_str(value, info);  // "full"
      else j[key] = value;
    else
      j[key] = value;
  });
  return j;
}

void write_report(const std::string& path, const nlohmann::json& j) {
  if (path.empty()) return;
  write_text_file_atomic(path, j.dump(2) + "\n");
}

GgmlType ggml_type_for_bits(int bits, bool symmetric) {
  switch (bits) {
    case 8: return GgmlType::Q8_0;
    case 4: return symmetric ? GgmlType::Q4_0 : GgmlType::Q4_1;
    case 16: return GgmlType::F16;
    case 32: return GgmlType::F32;
    default: fail("--bits {} has no GGUF block format (valid: 4 → Q4_1/Q4_0, 8 → Q8_0, 16 → F16, 32 → F32)", bits);
  }
}

namespace {

bool is_gguf(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  char magic[4] = {};
  bool yes = std::fread(magic, 1, 4, f) == 4 && std::memcmp(magic, "GGUF", 4) == 0;
  std::fclose(f);
  return yes;
}

}  // namespace

namespace {

// "25 Q8_0; 5 I8 (row length 172 is not a multiple of 32): blk.0.ffn_down, ..." — the tensors
// that could not take a llama.cpp block type are named.
std::string layout_summary(const GgufSaveReport& r) {
  std::map<std::string, int> count;
  std::map<std::string, std::string> why;
  std::map<std::string, std::vector<std::string>> names;
  for (const auto& t : r.int_weights) {
    const std::string type = ggml_type_name(static_cast<uint32_t>(t.type));
    ++count[type];
    if (t.not_block.empty()) continue;
    why[type] = t.not_block;
    names[type].push_back(t.name);
  }
  std::string out;
  for (const auto& [type, n] : count) {
    out += fmt::format("{}{} {}", out.empty() ? "" : "; ", n, type);
    if (why.count(type)) out += fmt::format(" ({}): {}", why[type], fmt::join(names[type], ", "));
  }
  return out;
}

}  // namespace

GgufSaveReport save_model(const ModelFile& m, const std::string& path, GgmlType type, const std::string& model_path,
                          const std::string& tokenizer) {
  GgufSaveOptions o;
  o.weight_type = type;
  std::optional<GgufVocab> vocab;
  const std::string tok_path = !tokenizer.empty() || model_path.empty() ? tokenizer : hf_tokenizer_path(model_path);
  if (!tok_path.empty()) {
    vocab = load_tokenizer(tok_path)->vocab();
    if (!vocab) std::fprintf(stderr, "note: %s: cannot export this tokenizer's vocabulary\n", tok_path.c_str());
  } else if (!model_path.empty() && is_gguf(model_path)) {
    GgufFile f(model_path);
    if (f.has("tokenizer.ggml.tokens")) vocab = read_gguf_vocab(f);
  }
  if (vocab) o.vocab = &*vocab;
  GgufSaveReport r = save_model_gguf(m, path, o);
  if (!r.f32_fallback.empty())
    std::fprintf(stderr, "note: %zu weights stay F32 (row length not a multiple of 32): %s\n", r.f32_fallback.size(),
                 fmt::format("{}", fmt::join(r.f32_fallback, ", ")).c_str());
  if (!r.int_weights.empty()) {
    double scale_err = 0, weight_err = 0;
    for (const auto& t : r.int_weights) {
      scale_err = std::max({scale_err, t.fp16_scale_err, t.fp16_min_err});
      weight_err = std::max(weight_err, t.llamacpp_weight_err);
    }
    std::printf("integer weights: %s\n", layout_summary(r).c_str());
    std::printf("fp16 block scales: max relative rounding %.2e; llama.cpp reads weights within %.2e of each row's "
                "max (qtune reads the exact float32 scales)\n", scale_err, weight_err);
  }
  if (r.llamacpp_loadable)
    std::printf("llama.cpp: loadable\n");
  else if (r.llamacpp_reasons.size() <= 2)
    std::printf("llama.cpp: not loadable (%s)\n", fmt::format("{}", fmt::join(r.llamacpp_reasons, "; ")).c_str());
  else
    std::printf("llama.cpp: not loadable (%s; and %zu more)\n", r.llamacpp_reasons.front().c_str(),
                r.llamacpp_reasons.size() - 1);
  return r;
}

nlohmann::json export_report_json(const GgufSaveReport& r) {
  nlohmann::json w = nlohmann::json::array();
  for (const auto& t : r.int_weights)
    w.push_back({{"name", t.name},
                 {"type", ggml_type_name(static_cast<uint32_t>(t.type))},
                 {"planes", t.planes},
                 {"not_block", t.not_block},
                 {"fp16_scale_err", t.fp16_scale_err},
                 {"fp16_min_err", t.fp16_min_err},
                 {"llamacpp_weight_err", t.llamacpp_weight_err}});
  return {{"integer_weights", w},
          {"f32_fallback", r.f32_fallback},
          {"llamacpp_loadable", r.llamacpp_loadable},
          {"llamacpp_reasons", r.llamacpp_reasons}};
}

nlohmann::json intlora_stats_json(const std::map<std::string, double>& stats) {
  nlohmann::json j = nlohmann::json::object();
  auto get = [&](const char* k) { return stats.count(k) ? stats.at(k) : 0.0; };
  if (get("weights") > 0) j["intlora_zero_weight_share"] = get("zero_weights") / get("weights");
  if (get("update_sq") > 0) j["intlora_lost_update_share"] = get("update_sq_on_zero_weights") / get("update_sq");
  if (stats.count("loldu_zero_pivots")) j["loldu_zero_pivots"] = get("loldu_zero_pivots");  // treated as 0 (adapters/ldu.h)
  return j;
}

std::vector<NamedPath> model_inputs(const ModelArgs& a) {
  std::vector<NamedPath> in;
  if (!a.model.empty())
    for (const std::string& p : model_paths(a.model)) in.push_back({"--model", p});
  if (!a.tokenizer.empty()) in.push_back({"--tokenizer", a.tokenizer});
  return in;
}

void use_threads(int threads) { kernels::set_num_threads(threads); }

std::string human_count(int64_t n) {
  if (n >= 1000000000) return fmt::format("{:.2f}B", n / 1e9);
  if (n >= 1000000) return fmt::format("{:.2f}M", n / 1e6);
  if (n >= 1000) return fmt::format("{:.1f}K", n / 1e3);
  return fmt::format("{}", n);
}

std::vector<std::string> model_paths(const std::string& model) {
  if (const auto dir = hf_checkpoint_dir(model)) return hf_checkpoint_files(*dir);
  return {model};
}

bool is_gguf_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  char magic[4] = {};
  const bool gguf = f && std::fread(magic, 1, 4, f) == 4 && std::memcmp(magic, "GGUF", 4) == 0;
  if (f) std::fclose(f);
  return gguf;
}

std::string gguf_architecture(const std::string& path) {
  if (!is_gguf_file(path)) return "";
  GgufFile g(path);
  return g.has("general.architecture") ? g.get_str("general.architecture") : "";
}

bool is_dit_gguf(const std::string& path) { return gguf_architecture(path) == "dit"; }

}  // namespace qtune::cli
