// io/tokenizer.h — text ↔ token ids, one interface over llama2.c tokenizer.bin, SentencePiece
// .model (libsentencepiece) and the SPM vocabulary inside a GGUF file.
#pragma once
#include <memory>
#include <string>
#include <vector>

namespace qtune {

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
};

// By content: GGUF magic → GGUF vocab; SentencePiece protobuf (.model) → libsentencepiece;
// else llama2.c tokenizer.bin. Throws Error naming the file.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace qtune
