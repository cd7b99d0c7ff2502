// tests/io/dataset_test.cpp — reading documents, packing windows, prompt masking, splits,
// the batcher's determinism and resume, and bad input.
#include <chrono>
#include <fstream>
#include <set>

#include "core/error.h"
#include "io/dataset.h"
#include "io/text.h"
#include "io/tokenizer.h"
#include "test_util.h"

namespace qtune {
namespace {

// One token per byte (id = byte + 3), BOS 1, EOS 2: packing results can be written by hand.
class ByteTokenizer : public Tokenizer {
 public:
  std::vector<int> encode(const std::string& text, bool bos, bool eos) const override {
    std::vector<int> ids;
    if (bos) ids.push_back(1);
    for (char c : text) ids.push_back(int(uint8_t(c)) + 3);
    if (eos) ids.push_back(2);
    return ids;
  }
  std::string decode(int, int token) const override { return std::string(1, char(token - 3)); }
  int vocab_size() const override { return 259; }
};

std::string write_file(const std::string& dir, const std::string& name, const std::string& content) {
  std::string p = dir + "/" + name;
  std::ofstream(p, std::ios::binary) << content;
  return p;
}

using test::error_of;

TEST(Text, Utf8Validation) {
  EXPECT_EQ(find_invalid_utf8("plain ascii"), std::string::npos);
  EXPECT_EQ(find_invalid_utf8("caf\xC3\xA9 \xE6\x97\xA5 \xF0\x9F\x99\x82"), std::string::npos);
  EXPECT_EQ(find_invalid_utf8("ab\xC3"), 2u);              // truncated sequence
  EXPECT_EQ(find_invalid_utf8("a\xC0\xAF"), 1u);           // overlong "/"
  EXPECT_EQ(find_invalid_utf8("a\xED\xA0\x80"), 1u);       // surrogate D800
  EXPECT_EQ(find_invalid_utf8("\xF4\x90\x80\x80"), 0u);    // above U+10FFFF
  EXPECT_EQ(find_invalid_utf8("x\x80"), 1u);               // lone continuation
  EXPECT_EQ(find_invalid_utf8("\xE2\x82x"), 0u);           // bad continuation
  EXPECT_THROW(check_text(std::string("a\0b", 3), "f"), Error);
}

TEST(Dataset, ReadsTxtAndJsonl) {
  std::string dir = test::scratch_dir();
  auto docs = read_documents(write_file(dir, "a.txt", "first line\r\n\n  \nsecond\nthird"));
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0].text, "first line");
  EXPECT_EQ(docs[2].text, "third");
  auto whole = read_documents(dir + "/a.txt", true);
  ASSERT_EQ(whole.size(), 1u);
  EXPECT_EQ(whole[0].text, "first line\r\n\n  \nsecond\nthird");
  auto js = read_documents(write_file(dir, "b.jsonl",
                                      "{\"text\": \"hello \\u00e9\"}\n\n{\"prompt\": \"Q: 2+2?\\nA:\", "
                                      "\"completion\": \" 4\", \"extra\": 1}\n"));
  ASSERT_EQ(js.size(), 2u);
  EXPECT_EQ(js[0].text, "hello \xC3\xA9");
  EXPECT_EQ(js[1].prompt, "Q: 2+2?\nA:");
  EXPECT_EQ(js[1].text, " 4");
}

TEST(Dataset, PacksWindowsWithPadding) {
  ByteTokenizer tok;
  // stream: [1 a b c 1 d e] (7 tokens), seq 4 → windows start at 0 and 4, the second padded
  Dataset ds = pack_documents({{"", "abc"}, {"", "de"}}, tok, 4, false, "mem");
  const int a = 'a' + 3, b = 'b' + 3, c = 'c' + 3, d = 'd' + 3, e = 'e' + 3;
  ASSERT_EQ(ds.n_windows, 2);
  EXPECT_EQ(ds.n_tokens, 7);
  EXPECT_EQ(ds.tokens, (std::vector<int32_t>{1, a, b, c, 1, d, e, 2}));
  // BOS is never a target; padding targets are -1
  EXPECT_EQ(ds.targets, (std::vector<int32_t>{a, b, c, -1, d, e, -1, -1}));
  EXPECT_EQ(ds.n_targets, 5);
  Dataset with_eos = pack_documents({{"", "ab"}}, tok, 8, true, "mem");
  EXPECT_EQ(with_eos.n_windows, 1);
  EXPECT_EQ(std::vector<int32_t>(with_eos.targets.begin(), with_eos.targets.begin() + 4),
            (std::vector<int32_t>{a, b, 2, -1}));
  // exactly N-1 = seq targets: one window, no padding
  EXPECT_EQ(pack_documents({{"", "abc"}}, tok, 3, false, "mem").n_windows, 1);
}

TEST(Dataset, PromptTokensAreMasked) {
  ByteTokenizer tok;
  Dataset ds = pack_documents({{"Q:", "ok"}}, tok, 8, true, "mem");
  const int Q = 'Q' + 3, colon = ':' + 3, o = 'o' + 3, k = 'k' + 3;
  EXPECT_EQ(std::vector<int32_t>(ds.tokens.begin(), ds.tokens.begin() + 6),
            (std::vector<int32_t>{1, Q, colon, o, k, 2}));
  // targets: predicting Q and ':' is masked, o, k, EOS are trained
  EXPECT_EQ(std::vector<int32_t>(ds.targets.begin(), ds.targets.begin() + 6),
            (std::vector<int32_t>{-1, -1, o, k, 2, -1}));
}

TEST(Dataset, PromptMaskWithRealTokenizer) {
  std::string path = test::shared_dir() + "/models/stories260K/tok512.bin";
  QT_REQUIRE_SHARED(path);
  auto tok = load_tokenizer(path);
  Document d{"Once upon a time, there was", " a little girl named Lily."};
  Dataset ds = pack_documents({d}, *tok, 64, false, "mem");
  std::vector<int> full = tok->encode(d.prompt + d.text, true, false);
  std::vector<int> prompt = tok->encode(d.prompt, true, false);
  // decoding the trained targets gives back exactly the completion
  std::string trained;
  int prev = -1, n_masked = 0;
  for (int j = 0; j + 1 < int(full.size()); ++j) {
    if (ds.targets[size_t(j)] < 0) {
      ++n_masked;
      continue;
    }
    EXPECT_EQ(ds.targets[size_t(j)], full[size_t(j) + 1]);
    trained += tok->decode(prev, ds.targets[size_t(j)]);
    prev = ds.targets[size_t(j)];
  }
  EXPECT_EQ(n_masked, int(prompt.size()) - 1);
  EXPECT_EQ(trained, d.text);
}

TEST(Dataset, SplitEveryKthDocumentAndValFile) {
  ByteTokenizer tok;
  std::string dir = test::scratch_dir();
  std::string text;
  for (int i = 0; i < 10; ++i) text += fmt::format("doc{}\n", i);
  std::string p = write_file(dir, "d.txt", text);
  DataOptions opt;
  opt.seq_len = 5;  // each document is BOS + 4 bytes = 5 tokens
  opt.val_every = 3;  // documents 2, 5, 8 are held out
  DataSplit s = load_data(p, tok, opt);
  EXPECT_EQ(s.train.n_documents, 7);
  EXPECT_EQ(s.val.n_documents, 3);
  std::string val_text;
  for (int32_t t : s.val.tokens)
    if (t > 2) val_text += char(t - 3);
  EXPECT_EQ(val_text, "doc2doc5doc8");
  DataSplit f = load_data(p, tok, {5, false, false, 0}, write_file(dir, "v.txt", "held out\n"));
  EXPECT_EQ(f.train.n_documents, 10);
  EXPECT_EQ(f.val.n_documents, 1);
  EXPECT_EQ(load_data(p, tok, {5, false, false, 0}).val.n_windows, 0);
  opt.val_every = 11;  // more than the 10 documents: nothing held out
  EXPECT_NE(error_of([&] { load_data(p, tok, opt); }).find("holds out no document"), std::string::npos);
  opt.val_every = 1;
  EXPECT_NE(error_of([&] { load_data(p, tok, opt); }).find("no training document"), std::string::npos);
}

Dataset numbered(int n_windows, int seq) {
  Dataset ds;
  ds.seq_len = seq;
  ds.n_windows = n_windows;
  for (int w = 0; w < n_windows; ++w)
    for (int j = 0; j < seq; ++j) {
      ds.tokens.push_back(w * 100 + j);
      ds.targets.push_back(w * 100 + j + 1);
    }
  return ds;
}

TEST(Batcher, ShufflesEveryWindowOncePerEpoch) {
  Dataset ds = numbered(10, 3);
  Batcher b(ds, 5, 42);
  std::vector<int32_t> tok(15), tgt(15);
  std::set<int> seen;
  std::vector<int> first_epoch;
  for (int i = 0; i < 2; ++i) {
    b.next(tok.data(), tgt.data());
    for (int r = 0; r < 5; ++r) {
      EXPECT_EQ(tgt[size_t(r * 3)], tok[size_t(r * 3)] + 1);
      seen.insert(tok[size_t(r * 3)] / 100);
      first_epoch.push_back(tok[size_t(r * 3)] / 100);
    }
  }
  EXPECT_EQ(seen.size(), 10u);  // a permutation
  EXPECT_EQ(b.epoch(), 0);
  std::vector<int> sorted(first_epoch);
  std::sort(sorted.begin(), sorted.end());
  EXPECT_NE(first_epoch, sorted);  // actually shuffled
  b.next(tok.data(), tgt.data());
  EXPECT_EQ(b.epoch(), 1);
  // the same seed gives the same order, another seed another one
  Batcher same(ds, 5, 42), other(ds, 5, 43);
  std::vector<int32_t> t2(15), t3(15), g(15);
  same.next(t2.data(), g.data());
  other.next(t3.data(), g.data());
  EXPECT_EQ(std::vector<int>(first_epoch.begin(), first_epoch.begin() + 5),
            (std::vector<int>{t2[0] / 100, t2[3] / 100, t2[6] / 100, t2[9] / 100, t2[12] / 100}));
  EXPECT_NE(t2, t3);
}

TEST(Batcher, ResumeContinuesExactly) {
  Dataset ds = numbered(7, 2);
  Batcher a(ds, 3, 7);
  std::vector<int32_t> tok(6), tgt(6);
  for (int i = 0; i < 5; ++i) a.next(tok.data(), tgt.data());  // crosses epoch boundaries
  BatcherState st = BatcherState::parse(a.state().to_string());
  Batcher b(ds, 3, 999);  // the seed is irrelevant after restore
  b.restore(st);
  for (int i = 0; i < 10; ++i) {
    std::vector<int32_t> ta(6), ga(6), tb(6), gb(6);
    a.next(ta.data(), ga.data());
    b.next(tb.data(), gb.data());
    ASSERT_EQ(ta, tb) << "batch " << i;
    ASSERT_EQ(ga, gb);
  }
  EXPECT_EQ(a.epoch(), b.epoch());
  EXPECT_THROW(BatcherState::parse("1 2 3"), Error);
  EXPECT_THROW(BatcherState::parse("1 2 3 4 5 6 7"), Error);
  st.index = 8;
  EXPECT_THROW(b.restore(st), Error);
}

TEST(Dataset, BadInput) {
  ByteTokenizer tok;
  std::string dir = test::scratch_dir();
  struct Case {
    std::string name, content, expect;
  };
  const Case cases[] = {
      {"empty.txt", "", "empty.txt: file is empty"},
      {"blank.txt", "\n  \n\t\n", "blank.txt: no documents"},
      {"nul.txt", std::string("ok\nbin\0ary\n", 11), "nul.txt:2: column 4: NUL"},
      {"latin1.txt", "ok\nok\ncaf\xE9\n", "latin1.txt:3: column 4: invalid UTF-8"},
      {"bad.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"\n", "bad.jsonl:2: invalid JSON"},
      {"arr.jsonl", "[1, 2]\n", "arr.jsonl:1: expected a JSON object"},
      {"num.jsonl", "{\"text\": 5}\n", "num.jsonl:1: \"text\" must be a string"},
      {"keys.jsonl", "{\"prompt\": \"p\"}\n", "keys.jsonl:1: the object has neither"},
      {"esc.jsonl", "{\"text\": \"a\\u0000b\"}\n", "esc.jsonl:1: \"text\": column 2: NUL"},
      {"emptycomp.jsonl", "{\"prompt\": \"p\", \"completion\": \"\"}\n", "emptycomp.jsonl:1: \"completion\" is empty"},
  };
  for (const Case& c : cases) {
    std::string p = write_file(dir, c.name, c.content);
    std::string msg = error_of([&] { load_data(p, tok, DataOptions{}); });
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.name << ": " << msg;
    EXPECT_NE(msg.find(dir), std::string::npos) << msg;
  }
  EXPECT_NE(error_of([&] { read_documents(dir + "/missing.txt"); }).find(dir + "/missing.txt"), std::string::npos);
  // a real binary file: the tokenizer model
  std::string bin = test::shared_dir() + "/models/stories260K/tok512.bin";
  if (test::have_shared(bin)) {
    EXPECT_NE(error_of([&] { read_documents(bin); }).find(bin), std::string::npos);
  }
  EXPECT_THROW(pack_documents({{"", "a"}}, tok, 0, false, "mem"), Error);
  Dataset none;
  EXPECT_THROW(Batcher(none, 1, 0), Error);
}

TEST(Dataset, KjvWithTok512) {
  std::string kjv = test::shared_dir() + "/data/kjv.txt";
  std::string tokp = test::shared_dir() + "/models/stories260K/tok512.bin";
  QT_REQUIRE_SHARED(kjv);
  QT_REQUIRE_SHARED(tokp);
  auto tok = load_tokenizer(tokp);
  DataOptions opt;
  opt.seq_len = 256;
  opt.val_every = 20;
  double t0 = double(std::chrono::steady_clock::now().time_since_epoch().count()) * 1e-9;
  DataSplit s = load_data(kjv, *tok, opt);
  double dt = double(std::chrono::steady_clock::now().time_since_epoch().count()) * 1e-9 - t0;
  EXPECT_EQ(s.train.n_documents + s.val.n_documents, 31102);
  EXPECT_EQ(s.val.n_documents, 31102 / 20);
  EXPECT_GT(s.train.n_windows, 1000);
  // the first training window starts with BOS + the first verse
  std::string first;
  int prev = 1;
  for (int j = 1; j < 10; ++j) {
    first += tok->decode(prev, s.train.tokens[size_t(j)]);
    prev = s.train.tokens[size_t(j)];
  }
  EXPECT_EQ(first.rfind("In the beginning", 0), 0u) << first;
  fmt::print("kjv: {} train windows, {} val windows, {} tokens, {:.2f} s\n", s.train.n_windows, s.val.n_windows,
             s.train.n_tokens + s.val.n_tokens, dt);
}

}  // namespace
}  // namespace qtune
