// io/dataset.h — training data for `qtune finetune`: documents from .txt / .jsonl files,
// tokenized and packed into fixed-length windows, with a resumable shuffling batcher.
//
// Formats
//   .txt   one document per non-empty line (default), or the whole file as one document.
//   .jsonl one JSON object per non-empty line: {"text": ...} or {"prompt": ..., "completion": ...}
//          (loss only on the completion). Any other extension is read as .txt, except .json,
//          which is refused (it usually holds one JSON array, not JSON Lines). Extensions
//          match in any case (.JSONL). A leading UTF-8 byte order mark is dropped (of the
//          file, and of each .jsonl line).
// Packing: every document becomes BOS + tokens (+ EOS if asked); the documents are concatenated
// into one stream, cut into windows of seq+1 tokens with stride seq (window i starts at token
// i*seq), inputs = w[0..seq), targets = w[1..seq]. A target is -1 (no loss) where the predicted
// token is a BOS or belongs to a prompt. The last partial window is kept and PADDED: missing
// inputs are EOS, missing targets -1 (so a short file still yields one window).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"
#include "io/tokenizer.h"

namespace qtune {

struct Document {
  std::string prompt;  // no loss on these tokens; empty for plain text
  std::string text;    // the text (or the completion) that is trained on
};

struct DataOptions {
  int seq_len = 256;
  bool whole_file = false;  // .txt: the whole file is one document
  bool add_eos = false;     // append EOS to every document (then EOS is a target)
  int val_every = 0;        // > 0: document i is held out for validation when i % K == K-1
};

// Reads and validates the documents of a file. Throws Error naming file (and line) for a
// missing/empty/non-regular file, a .json file, no documents, NUL bytes, invalid UTF-8, or a
// malformed JSON line.
std::vector<Document> read_documents(const std::string& path, bool whole_file = false);

// Flat windows, row-major [n_windows, seq_len].
struct Dataset {
  int seq_len = 0;
  int64_t n_windows = 0;
  int64_t n_documents = 0;
  int64_t n_tokens = 0;   // tokens in the packed stream (BOS/EOS included)
  int64_t n_targets = 0;  // targets that are not -1
  std::vector<int32_t> tokens, targets;
  const int32_t* window_tokens(int64_t i) const { return tokens.data() + i * seq_len; }
  const int32_t* window_targets(int64_t i) const { return targets.data() + i * seq_len; }
};

// Tokenizes and packs documents (see the header comment). Throws Error if seq_len < 1 or the
// documents hold no trainable token. `where` names the source in messages.
Dataset pack_documents(const std::vector<Document>& docs, const Tokenizer& tok, int seq_len, bool add_eos,
                       const std::string& where);

struct DataSplit {
  Dataset train, val;  // val.n_windows == 0 when there is no validation data
};

// Reads `path`; the validation set is `val_path` if given, else every val_every-th document
// of `path` (none if val_every == 0). Throws Error if a non-empty split ends up empty.
DataSplit load_data(const std::string& path, const Tokenizer& tok, const DataOptions& opt,
                    const std::string& val_path = "");

// Where a Batcher is: enough to continue a run exactly. Store it in checkpoints.
struct BatcherState {
  int64_t epoch = 0;
  int64_t index = 0;                  // next position in this epoch's order
  std::array<uint64_t, 4> rng{};      // Rng state before this epoch's shuffle
  std::string to_string() const;      // "epoch index s0 s1 s2 s3" (decimal)
  static BatcherState parse(const std::string& s);  // throws Error on a malformed string
};

// Serves batches of windows in an order shuffled per epoch by a seeded Rng; deterministic for
// a given (dataset, batch, seed). An epoch boundary may fall inside a batch.
class Batcher {
 public:
  Batcher(const Dataset& data, int batch, uint64_t seed);
  // tokens, targets: [batch, seq_len]
  void next(int32_t* tokens, int32_t* targets);
  BatcherState state() const;
  void restore(const BatcherState& s);  // throws Error if s does not fit this dataset
  int64_t epoch() const { return epoch_; }
  int batch() const { return batch_; }

 private:
  void shuffle();  // new order for the current epoch from rng_

  const Dataset& data_;
  int batch_;
  Rng rng_;
  std::array<uint64_t, 4> epoch_rng_{};
  std::vector<int64_t> order_;
  int64_t epoch_ = 0, index_ = 0;
};

}  // namespace qtune
