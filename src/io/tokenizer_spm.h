// io/tokenizer_spm.h — a SentencePiece .model through libsentencepiece.
#pragma once
#include <memory>
#include <string>

#include "io/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace qtune {

class SpmTokenizer : public Tokenizer {
 public:
  explicit SpmTokenizer(const std::string& path);  // throws Error naming the file
  ~SpmTokenizer() override;

  std::vector<int> encode(const std::string& text, bool bos, bool eos) const override;
  // Same rules as llama2.c: "▁" → " ", <0xXX> byte pieces → the byte, the leading space
  // dropped after BOS; control tokens (<s>, </s>) decode to "".
  std::string decode(int prev_token, int token) const override;
  int vocab_size() const override;
  int bos_id() const override { return bos_; }
  int eos_id() const override { return eos_; }
  std::optional<GgufVocab> vocab() const override;

 private:
  std::string path_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  int bos_ = 1, eos_ = 2;
};

}  // namespace qtune
