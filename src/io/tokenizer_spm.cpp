// io/tokenizer_spm.cpp — SentencePiece .model via libsentencepiece.
#include "io/tokenizer_spm.h"

#include <sentencepiece_processor.h>

#include "core/error.h"
#include "core/file.h"

namespace qtune {

SpmTokenizer::SpmTokenizer(const std::string& path)
    : path_(path), sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  // From bytes read through core/file.h, not sp_->Load(path): that opens the path itself and
  // would block on a FIFO.
  const std::string bytes = read_text_file(path);
  sentencepiece::util::Status status;
  try {
    status = sp_->LoadFromSerializedProto(bytes);
  } catch (const std::exception& e) {
    // libsentencepiece throws on some malformed models instead of returning a status, e.g. its
    // trie builder (darts) on a piece that is a lone NUL byte.
    fail("{}: not a valid SentencePiece model: {}", path, e.what());
  }
  QT_CHECK(status.ok(), "{}: not a valid SentencePiece model: {}", path, status.ToString());
  QT_CHECK(sp_->GetPieceSize() >= 3, "{}: SentencePiece model has {} pieces, expected at least 3", path,
           sp_->GetPieceSize());
  // Llama models use 1/2; keep the model's own ids when it defines them.
  if (sp_->bos_id() >= 0) bos_ = sp_->bos_id();
  if (sp_->eos_id() >= 0) eos_ = sp_->eos_id();
}

SpmTokenizer::~SpmTokenizer() = default;

int SpmTokenizer::vocab_size() const { return sp_->GetPieceSize(); }

std::optional<GgufVocab> SpmTokenizer::vocab() const {
  GgufVocab v;
  const int n = sp_->GetPieceSize();
  for (int i = 0; i < n; ++i) {
    v.tokens.push_back(sp_->IdToPiece(i));
    v.scores.push_back(sp_->GetScore(i));
    v.types.push_back(sp_->IsUnknown(i) ? 2 : sp_->IsControl(i) ? 3 : sp_->IsUnused(i) ? 5 : sp_->IsByte(i) ? 6 : 1);
  }
  v.bos = bos_;
  v.eos = eos_;
  v.unk = sp_->unk_id() >= 0 ? sp_->unk_id() : 0;
  return v;
}

std::vector<int> SpmTokenizer::encode(const std::string& text, bool bos, bool eos) const {
  std::vector<int> ids;
  const auto status = sp_->Encode(text, &ids);
  QT_CHECK(status.ok(), "{}: cannot encode text: {}", path_, status.ToString());
  if (bos) ids.insert(ids.begin(), bos_);
  if (eos) ids.push_back(eos_);
  return ids;
}

std::string SpmTokenizer::decode(int prev_token, int token) const {
  QT_CHECK(token >= 0 && token < vocab_size(), "{}: token id {} is outside the vocabulary (0..{})", path_, token,
           vocab_size() - 1);
  if (sp_->IsControl(token)) return "";
  if (sp_->IsByte(token)) {
    // byte pieces are spelled "<0xXX>"
    const std::string p = sp_->IdToPiece(token);
    return std::string(1, char(std::stoi(p.substr(3, 2), nullptr, 16)));
  }
  std::string p = sp_->IdToPiece(token);
  std::string out;
  static const std::string kSpace = "\xE2\x96\x81";  // U+2581 "▁", SentencePiece's space
  for (size_t i = 0; i < p.size();) {
    if (p.compare(i, kSpace.size(), kSpace) == 0) {
      out += ' ';
      i += kSpace.size();
    } else {
      out += p[i++];
    }
  }
  if (prev_token == bos_ && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

}  // namespace qtune
