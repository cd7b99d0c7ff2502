#include "cli/common.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "core/file.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "kernels/gemm.h"

namespace qtune::cli {

std::unique_ptr<Tokenizer> open_tokenizer(const ModelArgs& a, const LlamaConfig& cfg) {
  std::unique_ptr<Tokenizer> tok;
  std::string from = a.tokenizer.empty() ? a.model : a.tokenizer;
  if (!a.tokenizer.empty()) {
    tok = load_tokenizer(a.tokenizer);
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

MethodOptions inference_method() {
  MethodOptions m;
  m.frozen = true;  // every slot a plain float weight; no gradient buffers
  return m;
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

void save_model(const ModelFile& m, const std::string& path, GgmlType type, const std::string& vocab_from) {
  GgufSaveOptions o;
  o.weight_type = type;
  GgufVocab vocab;
  if (!vocab_from.empty() && is_gguf(vocab_from)) {
    GgufFile f(vocab_from);
    if (f.has("tokenizer.ggml.tokens")) {
      vocab = read_gguf_vocab(f);
      o.vocab = &vocab;
    }
  }
  GgufSaveReport r = save_model_gguf(m, path, o);
  if (!r.f32_fallback.empty())
    std::fprintf(stderr, "note: %zu weights stay F32 (row length not a multiple of 32): %s\n", r.f32_fallback.size(),
                 fmt::format("{}", fmt::join(r.f32_fallback, ", ")).c_str());
}

void use_threads(int threads) { kernels::set_num_threads(threads); }

std::string human_count(int64_t n) {
  if (n >= 1000000000) return fmt::format("{:.2f}B", n / 1e9);
  if (n >= 1000000) return fmt::format("{:.2f}M", n / 1e6);
  if (n >= 1000) return fmt::format("{:.1f}K", n / 1e3);
  return fmt::format("{}", n);
}

}  // namespace qtune::cli
