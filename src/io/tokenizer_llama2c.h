// io/tokenizer_llama2c.h — llama2.c tokenizer.bin: int32 max_token_length, then per token
// float32 score, int32 len, len bytes (the vocab size is the number of records in the file).
//
// encode() reproduces llama2.c run.c encode(): a dummy-prefix " " token when the text is
// non-empty, one token per UTF-8 codepoint (or its bytes as <0xXX> tokens, id = byte + 3),
// then repeatedly merge the adjacent pair whose concatenation is a token with the highest
// score (leftmost on ties). A heap over a linked list of symbols makes it O(n log n) rather
// than run.c's O(n²), with the same result.
#pragma once
#include <string>
#include <unordered_map>
#include <vector>

#include "io/tokenizer.h"

namespace qtune {

class Llama2cTokenizer : public Tokenizer {
 public:
  // Throws Error naming the file on a truncated/corrupt file.
  explicit Llama2cTokenizer(const std::string& path);
  // From pieces and scores directly (e.g. a GGUF vocabulary already converted to llama2.c
  // pieces: "▁" → " "). `where` names the source in messages.
  Llama2cTokenizer(std::vector<std::string> pieces, std::vector<float> scores, const std::string& where);

  std::vector<int> encode(const std::string& text, bool bos, bool eos) const override;
  std::string decode(int prev_token, int token) const override;
  int vocab_size() const override { return int(pieces_.size()); }
  // Pieces with " " → "▁" (llama2.c's export replaced them), types inferred from the strings.
  std::optional<GgufVocab> vocab() const override;

  const std::string& piece(int id) const { return pieces_.at(size_t(id)); }
  float score(int id) const { return scores_.at(size_t(id)); }

 private:
  void index(const std::string& where);
  int lookup(const std::string& s) const;  // -1 if absent
  void merge_pairs(std::vector<int>& ids) const;

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int> ids_;  // piece → first id with that piece
};

}  // namespace qtune
