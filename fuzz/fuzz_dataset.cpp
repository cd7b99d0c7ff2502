// fuzz/fuzz_dataset.cpp — training data (io/dataset.h): .txt (lines or whole file) and .jsonl
// documents, packed into windows with a fixed tokenizer, split, and served by the Batcher.
// Input: byte 0 = format (bits 0-1: 0 .txt lines, 1 .txt whole file, 2/3 .jsonl; bit 2 add_eos),
// byte 1 = seq_len − 1 (mod 64), byte 2 = val_every (mod 4), then the file's bytes.
#include "fuzz/fuzz_util.h"
#include "fuzz/seed_data.h"
#include "io/dataset.h"
#include "io/tokenizer_llama2c.h"

using namespace qtune;

namespace {

const Tokenizer& tokenizer() {
  static const Llama2cTokenizer t = [] {
    std::vector<std::string> pieces;
    std::vector<float> scores;
    fuzz::llama2c_pieces(true, pieces, scores);
    return Llama2cTokenizer(pieces, scores, "tiny");
  }();
  return t;
}

void check(const Dataset& d, int seq_len) {
  QT_FUZZ_CHECK(d.seq_len == seq_len && d.n_windows >= 0);
  QT_FUZZ_CHECK(d.tokens.size() == size_t(d.n_windows * seq_len) && d.targets.size() == d.tokens.size());
  int64_t targets = 0;
  for (size_t i = 0; i < d.tokens.size(); ++i) {
    QT_FUZZ_CHECK(d.tokens[i] >= 0 && d.tokens[i] < tokenizer().vocab_size());
    QT_FUZZ_CHECK(d.targets[i] >= -1 && d.targets[i] < tokenizer().vocab_size());
    targets += d.targets[i] >= 0;
  }
  QT_FUZZ_CHECK(targets == d.n_targets);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const int format = data[0] & 3;
  DataOptions opt;
  opt.whole_file = format == 1;
  opt.add_eos = data[0] & 4;
  opt.seq_len = 1 + data[1] % 64;
  opt.val_every = data[2] % 4;
  const std::string path = fuzz::write_input(format >= 2 ? "data.jsonl" : "data.txt", data + 3, size - 3);
  DataSplit s;
  if (!fuzz::expect_error([&] { s = load_data(path, tokenizer(), opt); })) return 0;
  check(s.train, opt.seq_len);
  QT_FUZZ_CHECK(s.train.n_windows > 0);
  if (s.val.n_windows > 0) check(s.val, opt.seq_len);
  // A few batches across an epoch boundary, then a resume from the saved state.
  Batcher b(s.train, 3, 42);
  std::vector<int32_t> tokens(size_t(3 * opt.seq_len)), targets(tokens.size());
  for (int i = 0; i < 3; ++i) b.next(tokens.data(), targets.data());
  const BatcherState st = b.state();
  QT_FUZZ_CHECK(BatcherState::parse(st.to_string()).to_string() == st.to_string());
  Batcher b2(s.train, 3, 1);
  b2.restore(st);
  QT_FUZZ_CHECK(b2.state().to_string() == st.to_string());
  return 0;
}
