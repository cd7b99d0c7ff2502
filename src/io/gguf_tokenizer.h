// io/gguf_tokenizer.h — the SentencePiece (SPM) vocabulary stored in a GGUF file's
// tokenizer.ggml.* keys, tokenized the way llama.cpp's SPM tokenizer does:
//   1. prepend a space (tokenizer.ggml.add_space_prefix, default true) and replace every
//      space by "▁" (U+2581);
//   2. split into UTF-8 characters, then repeatedly merge the adjacent pair whose
//      concatenation is a vocabulary token with the highest score (ties: leftmost first);
//   3. symbols that are not tokens are re-split along the merges that built them, and
//      characters that never formed a token are emitted as byte tokens "<0xXX>".
// Reads tokenizer.ggml.model (must be "llama"), tokens, scores, token_type, bos/eos/unk ids.
// A token string may be empty only for a control (type 3) or unused (5) token: a placeholder
// that no text encodes to, as llama.cpp loads it ("[EMPTY_<id>]"); an empty normal, unknown,
// user-defined or byte token is an Error (SentencePiece itself has no empty pieces).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "io/tokenizer.h"

namespace qtune {

class GgufFile;

// Throws Error naming the file for a missing/inconsistent vocabulary.
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const std::string& path);
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GgufFile& file);

// The vocabulary as GGUF stores it (GgufVocab, io/tokenizer.h; also what save_model_gguf embeds).
GgufVocab read_gguf_vocab(const GgufFile& file);
// Token types for a llama-style vocabulary given only the strings: "<unk>" → 2,
// "<s>"/"</s>" → 3, "<0xXX>" → 6, else 1.
std::vector<int32_t> infer_token_types(const std::vector<std::string>& tokens);

}  // namespace qtune
