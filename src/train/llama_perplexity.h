// train/llama_perplexity.h — perplexity scored the way llama.cpp's `llama-perplexity` scores it
// (tools/perplexity/perplexity.cpp, function `perplexity`, without --ppl-stride), so the figures
// of the two tools compare (`qtune eval --style llama-perplexity --ctx N`).
//
//   stream   the whole file, less one trailing newline (llama.cpp's -f), tokenized as ONE string,
//            BOS first (common_tokenize with add_special; SentencePiece's dummy space prefix once,
//            at the start of the text)
//   chunks   n = floor(len(stream) / ctx), capped by --chunks; the tail past n·ctx is dropped;
//            llama.cpp refuses a stream of fewer than 2·ctx tokens, and so does this
//   chunk i  tokens [i·ctx, (i+1)·ctx), its FIRST token replaced by BOS, run from a fresh context
//   scored   positions j in [first, ctx−1), first = ctx/2: the NLL of stream[i·ctx + j + 1] given
//            the logits at j — the second half of the chunk, ctx − ctx/2 − 1 tokens, so every
//            scored token has at least ctx/2 tokens of context
//   result   exp(mean NLL over every scored token of every chunk)
//
// Unlike qtune's own eval (io/dataset.h: one document per line, each BOS-first, windows of --seq
// scored at every position), nothing here depends on line breaks, and a window's first tokens,
// which have little context and the highest loss, are never scored.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "train/trainer.h"

namespace qtune {

// The chunks as an EvalSet: batch b holds chunks b·B .. b·B+B−1 (rows past the last are padding
// with nothing scored), so evaluate() with T = ctx gives llama-perplexity's mean NLL.
class LlamaPerplexityChunks : public EvalSet {
 public:
  // Throws Error naming `where` if ctx < 3 (a chunk would score no token), max_chunks < 0, or
  // the stream has fewer than 2·ctx tokens. max_chunks 0: every whole chunk.
  LlamaPerplexityChunks(std::vector<int> stream, int ctx, int bos, int64_t max_chunks, const std::string& where);

  int ctx() const { return ctx_; }
  int first() const { return ctx_ / 2; }                     // the first scored position
  int64_t chunks() const { return chunks_; }
  int64_t scored_per_chunk() const { return ctx_ - first() - 1; }
  int64_t scored_tokens() const { return chunks_ * scored_per_chunk(); }
  int64_t stream_tokens() const { return static_cast<int64_t>(stream_.size()); }

  // Chunk i: tokens [ctx] as fed to the model, targets [ctx] (−1 where not scored).
  void chunk(int64_t i, int* tokens, int* targets) const;

  int64_t num_batches(int B, int T) const override;
  void batch(int64_t i, int B, int T, int* tokens, int* targets) const override;

 private:
  std::vector<int> stream_;
  int ctx_, bos_;
  int64_t chunks_;
};

}  // namespace qtune
