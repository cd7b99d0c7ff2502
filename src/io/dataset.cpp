// io/dataset.cpp — reading, packing and batching training documents.
#include "io/dataset.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/file.h"
#include "io/text.h"

namespace qtune {

namespace {

// The file name's extension, lowercased (".JSONL" → ".jsonl"), or "" when it has none.
std::string extension(const std::string& path) {
  const size_t slash = path.rfind('/'), dot = path.rfind('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string ext = path.substr(dot);
  for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

constexpr std::string_view kBom = "\xef\xbb\xbf";  // U+FEFF: an encoding mark, not text

std::string_view strip_bom(std::string_view s) { return s.starts_with(kBom) ? s.substr(kBom.size()) : s; }

bool blank(std::string_view s) { return s.find_first_not_of(" \t\r\n\f\v") == std::string_view::npos; }

// Splits into lines (without "\n" or a trailing "\r"), validating each as text.
std::vector<std::string_view> text_lines(const std::string& content, const std::string& path) {
  std::vector<std::string_view> lines;
  std::string_view all(content);
  size_t start = 0;
  while (start < all.size()) {
    size_t end = all.find('\n', start);
    if (end == std::string_view::npos) end = all.size();
    std::string_view line = all.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    check_text(line, fmt::format("{}:{}", path, lines.size() + 1));
    lines.push_back(line);
    start = end + 1;
  }
  return lines;
}

// {"text": s} or {"prompt": p, "completion": c}; `where` is "file:line".
Document parse_json_line(std::string_view line, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: invalid JSON: {}", where, excerpt(e.what(), 200));  // it may quote a huge token
  }
  QT_CHECK(j.is_object(), "{}: expected a JSON object with \"text\" or \"prompt\"+\"completion\"", where);
  auto str = [&](const char* key) {
    const auto& v = j.at(key);
    QT_CHECK(v.is_string(), "{}: \"{}\" must be a string", where, key);
    std::string s = v.get<std::string>();
    check_text(s, fmt::format("{}: \"{}\"", where, key));  // catches an escaped \u0000
    return s;
  };
  Document d;
  if (j.contains("text")) {
    d.text = str("text");
    QT_CHECK(!blank(d.text), "{}: \"text\" is empty", where);
  } else if (j.contains("prompt") && j.contains("completion")) {
    d.prompt = str("prompt");
    d.text = str("completion");
    QT_CHECK(!d.text.empty(), "{}: \"completion\" is empty", where);
  } else {
    fail("{}: the object has neither \"text\" nor \"prompt\"+\"completion\"", where);
  }
  return d;
}

}  // namespace

std::vector<Document> read_documents(const std::string& path, bool whole_file) {
  const std::string ext = extension(path);
  // A .json file usually holds one JSON document (an array of records), not JSON Lines; reading
  // it as either lines or text would train on the wrong thing, so it is refused.
  QT_CHECK(ext != ".json",
           "{}: .json files are not read: training data is JSON Lines (.jsonl, one object per line) or text; "
           "rename the file to .jsonl if it is JSON Lines",
           path);
  const std::string file = read_text_file(path);
  QT_CHECK(!file.empty(), "{}: file is empty", path);
  // A leading byte order mark (Windows editors write one) would become the first tokens.
  const std::string content(strip_bom(file));
  const std::vector<std::string_view> lines = text_lines(content, path);
  std::vector<Document> docs;
  if (ext == ".jsonl") {
    // Each line too: concatenated JSONL files keep their marks.
    for (size_t i = 0; i < lines.size(); ++i)
      if (!blank(lines[i]))
        docs.push_back(parse_json_line(strip_bom(lines[i]), fmt::format("{}:{}", path, i + 1)));
  } else if (whole_file) {
    if (!blank(content)) docs.push_back({"", content});
  } else {
    for (std::string_view line : lines)
      if (!blank(line)) docs.push_back({"", std::string(line)});
  }
  QT_CHECK(!docs.empty(), "{}: no documents (only blank lines)", path);
  return docs;
}

Dataset pack_documents(const std::vector<Document>& docs, const Tokenizer& tok, int seq_len, bool add_eos,
                       const std::string& where) {
  QT_CHECK(seq_len >= 1, "{}: sequence length {} must be at least 1", where, seq_len);
  // stream: all documents back to back; trained[i]: stream[i] is a target (not BOS, not prompt)
  std::vector<int32_t> stream;
  std::vector<uint8_t> trained;
  for (const Document& d : docs) {
    std::vector<int> ids = tok.encode(d.prompt + d.text, true, add_eos);
    size_t n_masked = 1;  // BOS
    if (!d.prompt.empty()) {
      // Merges may cross the prompt/completion boundary, so mask the prefix the full encoding
      // shares with the prompt's own encoding: every token past it involves the completion.
      std::vector<int> p = tok.encode(d.prompt, true, false);
      n_masked = 0;
      while (n_masked < p.size() && n_masked < ids.size() && p[n_masked] == ids[n_masked]) ++n_masked;
    }
    for (size_t i = 0; i < ids.size(); ++i) {
      stream.push_back(ids[i]);
      trained.push_back(i >= n_masked);
    }
  }
  Dataset ds;
  ds.seq_len = seq_len;
  ds.n_documents = int64_t(docs.size());
  ds.n_tokens = int64_t(stream.size());
  const int64_t N = ds.n_tokens;
  ds.n_windows = N >= 2 ? (N - 1 + seq_len - 1) / seq_len : 0;  // ceil((N-1)/seq), last one padded
  ds.tokens.assign(size_t(ds.n_windows * seq_len), tok.eos_id());
  ds.targets.assign(size_t(ds.n_windows * seq_len), -1);
  for (int64_t w = 0; w < ds.n_windows; ++w) {
    for (int64_t j = 0; j < seq_len; ++j) {
      const int64_t src = w * seq_len + j, dst = w * seq_len + j;
      if (src < N) ds.tokens[size_t(dst)] = stream[size_t(src)];
      if (src + 1 < N && trained[size_t(src + 1)]) {
        ds.targets[size_t(dst)] = stream[size_t(src + 1)];
        ++ds.n_targets;
      }
    }
  }
  QT_CHECK(ds.n_targets > 0, "{}: the documents hold no trainable tokens", where);
  return ds;
}

DataSplit load_data(const std::string& path, const Tokenizer& tok, const DataOptions& opt,
                    const std::string& val_path) {
  QT_CHECK(opt.val_every >= 0, "val_every is {}, must be >= 0", opt.val_every);
  std::vector<Document> docs = read_documents(path, opt.whole_file), train_docs, val_docs;
  if (!val_path.empty()) {
    train_docs = std::move(docs);
    val_docs = read_documents(val_path, opt.whole_file);
  } else {
    for (size_t i = 0; i < docs.size(); ++i) {
      const bool held_out = opt.val_every > 0 && int64_t(i % size_t(opt.val_every)) == opt.val_every - 1;
      (held_out ? val_docs : train_docs).push_back(std::move(docs[i]));
    }
    QT_CHECK(opt.val_every == 0 || !val_docs.empty(),
             "{}: val_every {} holds out no document (the file has {} documents)", path, opt.val_every, docs.size());
    QT_CHECK(!train_docs.empty(), "{}: val_every {} leaves no training document", path, opt.val_every);
  }
  DataSplit s;
  s.train = pack_documents(train_docs, tok, opt.seq_len, opt.add_eos, path);
  if (!val_docs.empty())
    s.val = pack_documents(val_docs, tok, opt.seq_len, opt.add_eos, val_path.empty() ? path : val_path);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Batcher

std::string BatcherState::to_string() const {
  return fmt::format("{} {} {} {} {} {}", epoch, index, rng[0], rng[1], rng[2], rng[3]);
}

BatcherState BatcherState::parse(const std::string& s) {
  BatcherState st;
  std::istringstream in(s);
  in >> st.epoch >> st.index >> st.rng[0] >> st.rng[1] >> st.rng[2] >> st.rng[3];
  std::string rest;
  QT_CHECK(!in.fail() && !(in >> rest), "batcher state \"{}\": expected 6 integers \"epoch index s0 s1 s2 s3\"", s);
  return st;
}

Batcher::Batcher(const Dataset& data, int batch, uint64_t seed) : data_(data), batch_(batch), rng_(seed) {
  QT_CHECK(batch >= 1, "batch size {} must be at least 1", batch);
  QT_CHECK(data.n_windows > 0, "the data set has no windows to train on");
  shuffle();
}

void Batcher::shuffle() {
  epoch_rng_ = rng_.state();
  const int64_t n = data_.n_windows;
  order_.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) order_[size_t(i)] = i;
  // Fisher–Yates with the project's own Rng, so the order is the same on every platform
  for (int64_t i = n - 1; i > 0; --i) std::swap(order_[size_t(i)], order_[rng_.below(uint64_t(i + 1))]);
}

void Batcher::next(int32_t* tokens, int32_t* targets) {
  const int T = data_.seq_len;
  for (int b = 0; b < batch_; ++b) {
    if (index_ == data_.n_windows) {
      ++epoch_;
      index_ = 0;
      shuffle();
    }
    const int64_t w = order_[size_t(index_++)];
    std::memcpy(tokens + int64_t(b) * T, data_.window_tokens(w), size_t(T) * sizeof(int32_t));
    std::memcpy(targets + int64_t(b) * T, data_.window_targets(w), size_t(T) * sizeof(int32_t));
  }
}

BatcherState Batcher::state() const { return {epoch_, index_, epoch_rng_}; }

void Batcher::restore(const BatcherState& s) {
  QT_CHECK(s.epoch >= 0 && s.index >= 0 && s.index <= data_.n_windows,
           "batcher state (epoch {}, index {}) does not fit a data set of {} windows", s.epoch, s.index,
           data_.n_windows);
  QT_CHECK(s.rng != (std::array<uint64_t, 4>{}), "batcher state has an all-zero rng state");
  rng_.set_state(s.rng);
  shuffle();
  epoch_ = s.epoch;
  index_ = s.index;
}

}  // namespace qtune
