// io/tokenizer.h — text ↔ token ids, one interface over llama2.c tokenizer.bin, SentencePiece
// .model (libsentencepiece) and the SPM vocabulary inside a GGUF file.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qtune {

// A SentencePiece-style vocabulary as GGUF stores it (tokenizer.ggml.*): pieces with "▁" for a
// space, scores, token types (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
struct GgufVocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  int bos = 1, eos = 2, unk = 0;
  bool add_space_prefix = true;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Encodes UTF-8 text (adds a leading BOS / trailing EOS when asked).
  virtual std::vector<int> encode(const std::string& text, bool bos, bool eos) const = 0;
  // The text of one token given the previous one (handles the leading-space rule after BOS
  // and byte tokens "<0xXX>").
  virtual std::string decode(int prev_token, int token) const = 0;
  virtual int vocab_size() const = 0;
  virtual int bos_id() const { return 1; }
  virtual int eos_id() const { return 2; }
  // The vocabulary for embedding in a GGUF model (so llama.cpp can load it); nullopt when the
  // format cannot say.
  virtual std::optional<GgufVocab> vocab() const { return std::nullopt; }
};

// By content: GGUF magic → GGUF vocab; SentencePiece protobuf (.model) → libsentencepiece;
// else llama2.c tokenizer.bin. Throws Error naming the file.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace qtune
