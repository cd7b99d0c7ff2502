#include "io/gguf_tokenizer.h"

#include <queue>
#include <unordered_map>

#include "io/gguf.h"

namespace qtune {

namespace {

constexpr int kTypeNormal = 1, kTypeUnknown = 2, kTypeControl = 3, kTypeUnused = 5, kTypeByte = 6;
const std::string kSpace = "\xe2\x96\x81";  // "▁" U+2581, SentencePiece's visible space

// Length of the UTF-8 sequence starting with byte c (a stray continuation byte counts as 1,
// as in llama.cpp, so invalid UTF-8 degrades to byte tokens instead of failing).
size_t utf8_len(unsigned char c) {
  static const uint8_t table[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return table[c >> 4];
}

bool parse_byte_token(const std::string& s, int* byte) {
  if (s.size() != 6 || s.compare(0, 3, "<0x") != 0 || s[5] != '>') return false;
  auto hex = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
  int hi = hex(s[3]), lo = hex(s[4]);
  if (hi < 0 || lo < 0) return false;
  *byte = hi * 16 + lo;
  return true;
}

class SpmTokenizer : public Tokenizer {
 public:
  SpmTokenizer(GgufVocab v, const std::string& path) : v_(std::move(v)) {
    for (size_t i = 0; i < v_.tokens.size(); i++) index_[v_.tokens[i]] = int(i);  // last duplicate wins
    std::fill(std::begin(byte_token_), std::end(byte_token_), -1);
    for (size_t i = 0; i < v_.tokens.size(); i++) {
      int b;
      if (parse_byte_token(v_.tokens[i], &b)) byte_token_[b] = int(i);
    }
  }

  std::vector<int> encode(const std::string& text, bool bos, bool eos) const override {
    std::vector<int> out;
    if (bos) out.push_back(v_.bos);
    if (!text.empty()) {  // llama.cpp: empty text gives no tokens, not a lone "▁"
      std::string s = v_.add_space_prefix ? " " + text : text;
      std::string esc;
      for (char c : s) esc += c == ' ' ? kSpace : std::string(1, c);
      tokenize(esc, out);
    }
    if (eos) out.push_back(v_.eos);
    return out;
  }

  std::string decode(int prev_token, int token) const override {
    QT_CHECK(token >= 0 && token < vocab_size(), "token id {} is out of range (vocabulary has {} tokens)", token,
             vocab_size());
    const std::string& t = v_.tokens[size_t(token)];
    int type = v_.types[size_t(token)], b;
    if (type == kTypeByte && parse_byte_token(t, &b)) return std::string(1, char(b));
    if (type == kTypeControl) return "";
    if (type == kTypeUnknown) return "\xe2\x96\x85";  // "▅", as llama.cpp renders <unk>
    std::string piece;
    for (size_t i = 0; i < t.size();) {
      if (t.compare(i, kSpace.size(), kSpace) == 0) {
        piece += ' ';
        i += kSpace.size();
      } else {
        piece += t[i++];
      }
    }
    // After BOS the prefix space that encode() added is not part of the text.
    if (prev_token == v_.bos && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    return piece;
  }

  int vocab_size() const override { return int(v_.tokens.size()); }
  std::optional<GgufVocab> vocab() const override { return v_; }
  int bos_id() const override { return v_.bos; }
  int eos_id() const override { return v_.eos; }

 private:
  // A run of bytes in the text; merged symbols grow to the right and the right one is emptied.
  struct Symbol {
    size_t start, len;
    int prev, next;
  };
  struct Bigram {
    int left, right;
    float score;
    size_t len;  // bytes of the merged text: detects a stale entry whose symbols changed
  };
  struct Lower {  // priority: higher score first, then leftmost
    bool operator()(const Bigram& a, const Bigram& b) const {
      return a.score < b.score || (a.score == b.score && a.left > b.left);
    }
  };
  using Queue = std::priority_queue<Bigram, std::vector<Bigram>, Lower>;
  using Merges = std::unordered_map<std::string, std::pair<int, int>>;  // merged text → (left, right)

  int find(const std::string& s) const {
    auto it = index_.find(s);
    return it == index_.end() ? -1 : it->second;
  }

  void try_pair(const std::string& text, const std::vector<Symbol>& sym, int l, int r, Queue& q,
                Merges& merges) const {
    if (l < 0 || r < 0) return;
    std::string s = text.substr(sym[l].start, sym[l].len + sym[r].len);
    int id = find(s);
    if (id < 0) return;
    q.push({l, r, v_.scores[size_t(id)], s.size()});
    merges[s] = {l, r};
  }

  void tokenize(const std::string& text, std::vector<int>& out) const {
    // text: [n bytes] → one symbol per UTF-8 character, linked as a list
    std::vector<Symbol> sym;
    for (size_t off = 0; off < text.size();) {
      size_t n = std::min(utf8_len(static_cast<unsigned char>(text[off])), text.size() - off);
      int i = int(sym.size());
      sym.push_back({off, n, i - 1, off + n == text.size() ? -1 : i + 1});
      off += n;
    }
    Queue q;
    Merges merges;
    for (int i = 1; i < int(sym.size()); i++) try_pair(text, sym, i - 1, i, q, merges);
    while (!q.empty()) {
      Bigram b = q.top();
      q.pop();
      Symbol &l = sym[b.left], &r = sym[b.right];
      if (l.len == 0 || r.len == 0 || l.len + r.len != b.len) continue;  // stale
      l.len += r.len;
      r.len = 0;
      l.next = r.next;
      if (r.next >= 0) sym[r.next].prev = b.left;
      try_pair(text, sym, l.prev, b.left, q, merges);
      try_pair(text, sym, b.left, l.next, q, merges);
    }
    for (int i = sym.empty() ? -1 : 0; i != -1; i = sym[i].next) emit(text, sym, merges, sym[i], out);
  }

  // Emits one symbol: its token, else the two symbols it was merged from, else its bytes.
  void emit(const std::string& text, const std::vector<Symbol>& sym, const Merges& merges, const Symbol& s,
            std::vector<int>& out) const {
    std::string piece = text.substr(s.start, s.len);
    int id = find(piece);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
    auto it = merges.find(piece);
    if (it != merges.end()) {
      emit(text, sym, merges, sym[it->second.first], out);
      emit(text, sym, merges, sym[it->second.second], out);
      return;
    }
    for (size_t k = 0; k < s.len; k++) {
      int t = byte_token_[static_cast<unsigned char>(text[s.start + k])];
      out.push_back(t >= 0 ? t : v_.unk);
    }
  }

  GgufVocab v_;
  std::unordered_map<std::string, int> index_;
  int byte_token_[256];
};

}  // namespace

std::vector<int32_t> infer_token_types(const std::vector<std::string>& tokens) {
  std::vector<int32_t> types;
  types.reserve(tokens.size());
  for (const auto& t : tokens) {
    int b;
    types.push_back(t == "<unk>"                  ? kTypeUnknown
                    : t == "<s>" || t == "</s>"   ? kTypeControl
                    : parse_byte_token(t, &b)     ? kTypeByte
                                                  : kTypeNormal);
  }
  return types;
}

GgufVocab read_gguf_vocab(const GgufFile& f) {
  const std::string& p = f.path();
  std::string model = f.get_str("tokenizer.ggml.model");
  QT_CHECK(model == "llama", "{}: key 'tokenizer.ggml.model': '{}' is not supported (only 'llama', SentencePiece)",
           p, excerpt(model));
  GgufVocab v;
  v.tokens = f.get_arr_str("tokenizer.ggml.tokens");
  size_t n = v.tokens.size();
  QT_CHECK(n > 0 && n <= size_t(INT32_MAX), "{}: key 'tokenizer.ggml.tokens': {} tokens", p, n);
  v.scores = f.has("tokenizer.ggml.scores") ? f.get_arr_f32("tokenizer.ggml.scores") : std::vector<float>(n, 0.0f);
  v.types = f.has("tokenizer.ggml.token_type") ? f.get_arr_i32("tokenizer.ggml.token_type")
                                                : std::vector<int32_t>(n, kTypeNormal);
  QT_CHECK(v.scores.size() == n, "{}: key 'tokenizer.ggml.scores': {} scores for {} tokens", p, v.scores.size(), n);
  QT_CHECK(v.types.size() == n, "{}: key 'tokenizer.ggml.token_type': {} types for {} tokens", p, v.types.size(), n);
  // An empty token: SentencePiece refuses empty pieces, and llama.cpp loads one only as a
  // placeholder (renamed "[EMPTY_<id>]", with a warning) that no text encodes to. So qtune accepts
  // an empty token as a control or unused placeholder and rejects it as a token that encodes
  // text (normal, unknown, user-defined, byte): a vocabulary of those would silently tokenize
  // everything to byte or unknown tokens.
  for (size_t i = 0; i < n; i++)
    QT_CHECK(!v.tokens[i].empty() || v.types[i] == kTypeControl || v.types[i] == kTypeUnused,
             "{}: key 'tokenizer.ggml.tokens': token {} is empty (type {}): only a control ({}) or unused ({}) "
             "token may be empty",
             p, i, v.types[i], kTypeControl, kTypeUnused);
  v.bos = int(f.get_u32_or("tokenizer.ggml.bos_token_id", 1));
  v.eos = int(f.get_u32_or("tokenizer.ggml.eos_token_id", 2));
  v.unk = int(f.get_u32_or("tokenizer.ggml.unknown_token_id", 0));
  for (auto [key, id] : {std::pair{"bos_token_id", v.bos}, {"eos_token_id", v.eos}, {"unknown_token_id", v.unk}})
    QT_CHECK(id >= 0 && size_t(id) < n, "{}: key 'tokenizer.ggml.{}': {} is not below the vocabulary size {}", p,
             key, id, n);
  v.add_space_prefix = f.get_bool_or("tokenizer.ggml.add_space_prefix", true);
  return v;
}

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GgufFile& file) {
  return std::make_unique<SpmTokenizer>(read_gguf_vocab(file), file.path());
}

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const std::string& path) {
  GgufFile f(path);
  return load_gguf_tokenizer(f);
}

}  // namespace qtune
