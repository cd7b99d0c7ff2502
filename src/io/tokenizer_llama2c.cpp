// io/tokenizer_llama2c.cpp — llama2.c tokenizer.bin reader, BPE-by-score encoder, decoder.
#include "io/tokenizer_llama2c.h"

#include <cmath>
#include <cstring>
#include <queue>

#include "core/error.h"
#include "core/file.h"
#include "io/gguf_tokenizer.h"  // infer_token_types

namespace qtune {

namespace {

constexpr int32_t kMaxTokenLength = 1 << 16;  // far above any real vocabulary (Llama 2: 48)
constexpr size_t kMaxVocab = size_t(1) << 21;
// run.c starts its best-score search at -1e10, so a pair scoring <= -1e10 is never merged.
constexpr float kNoMerge = -1e10f;

// "<0xXX>" (upper- or lower-case hex) → the byte; -1 if the piece is not a byte token.
int byte_token(const std::string& p) {
  if (p.size() != 6 || p.compare(0, 3, "<0x") != 0 || p[5] != '>') return -1;
  int v = 0;
  for (int i = 3; i < 5; ++i) {
    char c = p[size_t(i)];
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

}  // namespace

Llama2cTokenizer::Llama2cTokenizer(const std::string& path) {
  MappedFile f(path);
  QT_CHECK(f.size() > 0, "{}: tokenizer file is empty", path);
  Reader r(f);
  const int32_t max_len = r.get<int32_t>("max_token_length");
  QT_CHECK(max_len > 0 && max_len <= kMaxTokenLength, "{}: max_token_length is {}, expected 1..{}", path, max_len,
           kMaxTokenLength);
  while (r.left() > 0) {
    const size_t id = pieces_.size();
    QT_CHECK(id < kMaxVocab, "{}: more than {} tokens", path, kMaxVocab);
    QT_CHECK(r.left() >= 8, "{}: token {}: record truncated ({} bytes left, the score and length need 8)", path, id,
             r.left());
    const float score = r.get<float>("score");
    const int32_t len = r.get<int32_t>("len");
    QT_CHECK(std::isfinite(score), "{}: token {}: score is not finite", path, id);
    QT_CHECK(len >= 0 && len <= max_len, "{}: token {}: length {} is outside 0..max_token_length ({})", path, id, len,
             max_len);
    QT_CHECK(size_t(len) <= r.left(), "{}: token {}: length {} but only {} bytes left", path, id, len, r.left());
    pieces_.push_back(r.string(size_t(len), "piece"));
    scores_.push_back(score);
  }
  index(path);
}

Llama2cTokenizer::Llama2cTokenizer(std::vector<std::string> pieces, std::vector<float> scores,
                                   const std::string& where)
    : pieces_(std::move(pieces)), scores_(std::move(scores)) {
  QT_CHECK(pieces_.size() == scores_.size(), "{}: {} tokens but {} scores", where, pieces_.size(), scores_.size());
  for (size_t i = 0; i < scores_.size(); ++i)
    QT_CHECK(std::isfinite(scores_[i]), "{}: token {}: score is not finite", where, i);
  index(where);
}

void Llama2cTokenizer::index(const std::string& where) {
  // 0 = <unk>, 1 = BOS, 2 = EOS, so at least 3 tokens.
  QT_CHECK(pieces_.size() >= 3, "{}: vocabulary has {} tokens, expected at least 3 (unk, bos, eos)", where,
           pieces_.size());
  ids_.reserve(pieces_.size());
  for (size_t i = 0; i < pieces_.size(); ++i) ids_.emplace(pieces_[i], int(i));  // first id wins
}

int Llama2cTokenizer::lookup(const std::string& s) const {
  auto it = ids_.find(s);
  return it == ids_.end() ? -1 : it->second;
}

std::vector<int> Llama2cTokenizer::encode(const std::string& text, bool bos, bool eos) const {
  std::vector<int> out;
  if (bos) out.push_back(bos_id());
  std::vector<int> ids;  // the symbols to merge: dummy prefix + codepoints / bytes
  ids.reserve(text.size() + 1);
  if (!text.empty()) {
    // SentencePiece's add_dummy_prefix: the text is encoded as if it started with a space.
    int sp = lookup(" ");
    if (sp >= 0) ids.push_back(sp);
  }
  // One symbol per UTF-8 codepoint: a lead byte plus up to 3 continuation bytes (10xxxxxx).
  const int n_vocab = vocab_size();
  for (size_t i = 0; i < text.size();) {
    size_t j = i + 1;
    while (j < text.size() && j - i < 4 && (uint8_t(text[j]) & 0xC0) == 0x80) ++j;
    const std::string cp = text.substr(i, j - i);
    int id = lookup(cp);
    if (id >= 0) {
      ids.push_back(id);
    } else {
      // byte fallback: the first 3 ids are <unk>, <s>, </s>, then <0x00>..<0xFF>
      for (char c : cp) {
        int b = int(uint8_t(c)) + 3;
        ids.push_back(b < n_vocab ? b : 0);
      }
    }
    i = j;
  }
  merge_pairs(ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (eos) out.push_back(eos_id());
  return out;
}

// Greedy merging, as run.c: while some adjacent pair concatenates to a token, merge the pair
// with the best score (leftmost on ties). Symbols form a doubly linked list; candidate pairs sit
// in a max-heap keyed (score, -position) and are re-checked when popped, since a merge may have
// consumed one of their symbols since they were pushed.
void Llama2cTokenizer::merge_pairs(std::vector<int>& ids) const {
  const int n = int(ids.size());
  if (n < 2) return;
  struct Sym {
    int id, prev, next;
    bool alive;
  };
  struct Pair {
    float score;
    int left, right;     // symbol indices (= positions of their first codepoint)
    int left_id, right_id;  // the symbols' ids when pushed, to detect stale entries
    int merged;
  };
  auto worse = [](const Pair& a, const Pair& b) {
    return a.score != b.score ? a.score < b.score : a.left > b.left;
  };
  std::priority_queue<Pair, std::vector<Pair>, decltype(worse)> heap(worse);
  std::vector<Sym> sym(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) sym[size_t(i)] = {ids[size_t(i)], i - 1, i + 1 < n ? i + 1 : -1, true};
  std::string buf;
  auto push = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    const Sym &a = sym[size_t(l)], &b = sym[size_t(r)];
    buf = pieces_[size_t(a.id)];
    buf += pieces_[size_t(b.id)];
    int m = lookup(buf);
    if (m >= 0 && scores_[size_t(m)] > kNoMerge) heap.push({scores_[size_t(m)], l, r, a.id, b.id, m});
  };
  for (int i = 0; i + 1 < n; ++i) push(i, i + 1);
  while (!heap.empty()) {
    Pair p = heap.top();
    heap.pop();
    Sym &a = sym[size_t(p.left)], &b = sym[size_t(p.right)];
    // a symbol's id only ever changes to a longer piece, so equal ids mean an unchanged symbol
    if (!a.alive || !b.alive || a.next != p.right || a.id != p.left_id || b.id != p.right_id) continue;
    a.id = p.merged;
    b.alive = false;
    a.next = b.next;
    if (b.next >= 0) sym[size_t(b.next)].prev = p.left;
    push(a.prev, p.left);
    push(p.left, a.next);
  }
  ids.clear();
  for (int i = 0; i >= 0; i = sym[size_t(i)].next) ids.push_back(sym[size_t(i)].id);
}

std::optional<GgufVocab> Llama2cTokenizer::vocab() const {
  GgufVocab v;
  for (const auto& p : pieces_) {
    std::string t;
    for (char ch : p) t += ch == ' ' ? std::string("\xe2\x96\x81") : std::string(1, ch);  // " " → "▁"
    v.tokens.push_back(std::move(t));
  }
  v.scores = scores_;
  v.types = infer_token_types(v.tokens);
  return v;
}

std::string Llama2cTokenizer::decode(int prev_token, int token) const {
  QT_CHECK(token >= 0 && token < vocab_size(), "token id {} is outside the vocabulary (0..{})", token,
           vocab_size() - 1);
  const std::string& p = pieces_[size_t(token)];
  // after BOS, SentencePiece drops the dummy-prefix space
  if (prev_token == bos_id() && !p.empty() && p[0] == ' ') return p.substr(1);
  int b = byte_token(p);
  if (b >= 0) return std::string(1, char(b));
  return p;
}

}  // namespace qtune
