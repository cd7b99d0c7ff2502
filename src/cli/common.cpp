#include "cli/common.h"

#include <fmt/format.h>

#include "core/error.h"
#include "core/file.h"

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
  m.method = "full";  // every slot a plain float weight (grads are allocated but never used)
  return m;
}

void write_report(const std::string& path, const nlohmann::json& j) {
  if (path.empty()) return;
  write_text_file_atomic(path, j.dump(2) + "\n");
}

std::string human_count(int64_t n) {
  if (n >= 1000000000) return fmt::format("{:.2f}B", n / 1e9);
  if (n >= 1000000) return fmt::format("{:.2f}M", n / 1e6);
  if (n >= 1000) return fmt::format("{:.1f}K", n / 1e3);
  return fmt::format("{}", n);
}

}  // namespace qtune::cli
