// train/llama_perplexity.cpp — llama-perplexity's chunking (see the header).
#include "train/llama_perplexity.h"

#include <algorithm>

#include "core/error.h"

namespace qtune {

LlamaPerplexityChunks::LlamaPerplexityChunks(std::vector<int> stream, int ctx, int bos, int64_t max_chunks,
                                             const std::string& where)
    : stream_(std::move(stream)), ctx_(ctx), bos_(bos), chunks_(0) {
  QT_CHECK(ctx >= 3, "{}: --ctx {} is too small: a chunk scores its positions ctx/2 .. ctx-2, none below 3", where,
           ctx);
  QT_CHECK(max_chunks >= 0, "{}: --chunks {} must be >= 0 (0 = every chunk)", where, max_chunks);
  const int64_t n = stream_tokens();
  // llama-perplexity's own rule (it prints "you need at least 2*n_ctx tokens").
  QT_CHECK(n >= 2 * int64_t{ctx},
           "{}: tokenizes to {} tokens (BOS included); llama-perplexity style with --ctx {} needs at least {}", where,
           n, ctx, 2 * int64_t{ctx});
  chunks_ = n / ctx;
  if (max_chunks > 0) chunks_ = std::min(chunks_, max_chunks);
}

void LlamaPerplexityChunks::chunk(int64_t i, int* tokens, int* targets) const {
  QT_CHECK(i >= 0 && i < chunks_, "chunk {} is outside 0..{}", i, chunks_ - 1);
  const int* c = stream_.data() + i * ctx_;
  std::copy(c, c + ctx_, tokens);
  tokens[0] = bos_;  // llama.cpp puts BOS in place of the chunk's first token (not in front of it)
  // Position j predicts c[j + 1]; the targets come from the stream, so position ctx−1 (whose
  // next token belongs to the next chunk) is not scored, as in llama.cpp.
  for (int j = 0; j < ctx_; ++j) targets[j] = (j >= first() && j < ctx_ - 1) ? c[j + 1] : -1;
}

int64_t LlamaPerplexityChunks::num_batches(int B, int T) const {
  QT_CHECK(T == ctx_, "llama-perplexity chunks are {} tokens, the model is run on {}", ctx_, T);
  QT_CHECK(B >= 1, "batch {} must be >= 1", B);
  return (chunks_ + B - 1) / B;
}

void LlamaPerplexityChunks::batch(int64_t i, int B, int T, int* tokens, int* targets) const {
  for (int b = 0; b < B; ++b) {
    const int64_t c = i * B + b;
    int* tok = tokens + int64_t{b} * T;
    int* tgt = targets + int64_t{b} * T;
    if (c >= chunks_) {  // padding row past the last chunk: nothing scored
      std::fill(tok, tok + T, 0);
      std::fill(tgt, tgt + T, -1);
      continue;
    }
    chunk(c, tok, tgt);
  }
}

}  // namespace qtune
