// fuzz/fuzz_tokenize.cpp — encoding and decoding arbitrary bytes with fixed, valid tokenizers of
// every kind: llama2.c (run.c's merges), the GGUF SentencePiece vocabulary (llama.cpp's SPM
// algorithm) and libsentencepiece (unigram and BPE). With byte tokens in the vocabulary the
// first two must give the text back exactly (decode ∘ encode = identity; for the GGUF one, of
// valid UTF-8).
#include <algorithm>

#include "fuzz/seed_data.h"
#include "fuzz/tokenizer_check.h"
#include "io/gguf.h"
#include "io/gguf_tokenizer.h"
#include "io/text.h"
#include "io/tokenizer_llama2c.h"
#include "io/tokenizer_spm.h"

using namespace qtune;

namespace {

struct Tokenizers {
  std::unique_ptr<Tokenizer> l2c_bytes, l2c_small, gguf_bytes, gguf_small, spm_unigram, spm_bpe;
};

std::unique_ptr<Tokenizer> gguf_tokenizer(bool bytes) {
  const GgufVocab v = fuzz::tiny_vocab(bytes);
  GgufWriter w;
  w.set_str("tokenizer.ggml.model", "llama");
  w.set_arr_str("tokenizer.ggml.tokens", v.tokens);
  w.set_arr_f32("tokenizer.ggml.scores", v.scores);
  w.set_arr_i32("tokenizer.ggml.token_type", v.types);
  const std::string path = fuzz::scratch_path(bytes ? "vocab_bytes.gguf" : "vocab_small.gguf");
  w.write(path);
  return load_gguf_tokenizer(path);
}

const Tokenizers& tokenizers() {
  static const Tokenizers t = [] {
    Tokenizers t;
    std::vector<std::string> pieces;
    std::vector<float> scores;
    fuzz::llama2c_pieces(true, pieces, scores);
    t.l2c_bytes = std::make_unique<Llama2cTokenizer>(pieces, scores, "tiny");
    fuzz::llama2c_pieces(false, pieces, scores);
    t.l2c_small = std::make_unique<Llama2cTokenizer>(pieces, scores, "tiny");
    t.gguf_bytes = gguf_tokenizer(true);
    t.gguf_small = gguf_tokenizer(false);
    for (bool bpe : {false, true}) {
      const std::string path = fuzz::scratch_path(bpe ? "bpe.model" : "unigram.model");
      fuzz::write_bytes(path, fuzz::spm_model(bpe, true));
      (bpe ? t.spm_bpe : t.spm_unigram) = std::make_unique<SpmTokenizer>(path);
    }
    return t;
  }();
  return t;
}

}  // namespace

// True when the text's own encoding holds a control id (<unk> <s> </s>, ids 0..2): with these
// vocabularies "<" + "s" + ">" can merge into <s>, as run.c and llama.cpp merge it too (the real
// Llama vocabularies have no such merge path), and control ids do not decode to their text.
bool has_control(const Tokenizer& t, const std::string& text) {
  const std::vector<int> ids = t.encode(text, false, false);
  return std::find_if(ids.begin(), ids.end(), [](int id) { return id < 3; }) != ids.end();
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;  // longer texts add nothing the merges have not seen
  const std::string text(reinterpret_cast<const char*>(data), size);
  const Tokenizers& t = tokenizers();
  // llama2.c: identity for any bytes (unknown codepoints fall back to their byte tokens).
  const std::string l2c = fuzz::check_round(*t.l2c_bytes, text);
  if (l2c != text && !has_control(*t.l2c_bytes, text)) {
    std::fprintf(stderr, "llama2.c tokenizer: decode(encode(text)) = '%s'\n", l2c.c_str());
    std::abort();
  }
  // GGUF SPM: identity for valid UTF-8 without a literal "▁" (which, as in every SentencePiece
  // model, decodes to a space). Invalid UTF-8 is split as llama.cpp splits it: a stray lead byte
  // takes the next bytes along, even those of a "▁" that stood for a space.
  const std::string g = fuzz::check_round(*t.gguf_bytes, text);
  if (g != text && find_invalid_utf8(text) == std::string::npos && text.find("\xe2\x96\x81") == std::string::npos &&
      !has_control(*t.gguf_bytes, text)) {
    std::fprintf(stderr, "GGUF tokenizer: decode(encode(text)) = '%s'\n", g.c_str());
    std::abort();
  }
  fuzz::check_round(*t.l2c_small, text);
  fuzz::check_round(*t.gguf_small, text);
  for (const Tokenizer* s : {t.spm_unigram.get(), t.spm_bpe.get()})
    fuzz::expect_error([&] { fuzz::check_round(*s, text); });  // invalid UTF-8 may be refused
  return 0;
}
