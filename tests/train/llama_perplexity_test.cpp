// llama-perplexity's chunking (train/llama_perplexity.h): which tokens each chunk feeds, which
// positions it scores, the dropped tail and the refusals — against llama.cpp's rules written out
// here independently, token by token.
#include <string>
#include <vector>

#include "test_util.h"
#include "train/llama_perplexity.h"

namespace qtune {
namespace {

constexpr int kBos = 1;

// A stream as the tokenizer gives it: BOS, then tokens 100, 101, ... (never 1, so a BOS in a
// chunk can only be the one put there).
std::vector<int> stream_of(int n) {
  std::vector<int> s{kBos};
  for (int i = 1; i < n; ++i) s.push_back(100 + i);
  return s;
}

TEST(LlamaPerplexityChunks, CountsWholeChunksAndDropsTheTail) {
  // 2·8 + 7 tokens: two whole chunks of 8, the 7-token tail dropped (llama.cpp: n_tokens / n_ctx)
  const LlamaPerplexityChunks c(stream_of(23), 8, kBos, 0, "t");
  EXPECT_EQ(c.chunks(), 2);
  EXPECT_EQ(c.first(), 4);
  EXPECT_EQ(c.scored_per_chunk(), 3);  // positions 4, 5, 6; position 7's next token is the next chunk's
  EXPECT_EQ(c.scored_tokens(), 6);
  EXPECT_EQ(c.stream_tokens(), 23);
  EXPECT_EQ(LlamaPerplexityChunks(stream_of(24), 8, kBos, 0, "t").chunks(), 3);
}

TEST(LlamaPerplexityChunks, FeedsTheChunkWithBosInPlaceOfItsFirstToken) {
  const std::vector<int> s = stream_of(40);
  const int ctx = 10;
  const LlamaPerplexityChunks c(s, ctx, kBos, 0, "t");
  ASSERT_EQ(c.chunks(), 4);
  std::vector<int> tok(ctx), tgt(ctx);
  for (int64_t i = 0; i < c.chunks(); ++i) {
    c.chunk(i, tok.data(), tgt.data());
    EXPECT_EQ(tok[0], kBos) << "chunk " << i;  // replaced, not prepended: the chunk stays ctx long
    for (int j = 1; j < ctx; ++j) EXPECT_EQ(tok[j], s[i * ctx + j]) << "chunk " << i << " position " << j;
  }
}

TEST(LlamaPerplexityChunks, ScoresTheSecondHalfAgainstTheNextToken) {
  for (int ctx : {3, 4, 7, 10, 11}) {
    const std::vector<int> s = stream_of(3 * ctx + 1);
    const LlamaPerplexityChunks c(s, ctx, kBos, 0, "t");
    std::vector<int> tok(ctx), tgt(ctx);
    int64_t scored = 0;
    for (int64_t i = 0; i < c.chunks(); ++i) {
      c.chunk(i, tok.data(), tgt.data());
      for (int j = 0; j < ctx; ++j) {
        // llama.cpp: for j in [n_ctx/2, n_ctx - 1): -log p(tokens[start + j + 1] | logits at j)
        const bool want_scored = j >= ctx / 2 && j + 1 < ctx;
        EXPECT_EQ(tgt[j], want_scored ? s[i * ctx + j + 1] : -1) << "ctx " << ctx << " chunk " << i << " pos " << j;
        scored += tgt[j] >= 0;
      }
    }
    EXPECT_EQ(scored, c.scored_tokens()) << "ctx " << ctx;
    EXPECT_EQ(c.scored_per_chunk(), ctx - ctx / 2 - 1) << "ctx " << ctx;
  }
}

TEST(LlamaPerplexityChunks, ChunksCapLimitsTheChunks) {
  EXPECT_EQ(LlamaPerplexityChunks(stream_of(100), 8, kBos, 5, "t").chunks(), 5);
  EXPECT_EQ(LlamaPerplexityChunks(stream_of(100), 8, kBos, 50, "t").chunks(), 12);  // a cap above the count
}

TEST(LlamaPerplexityChunks, BatchesChunksInOrderAndPadsTheLast) {
  const std::vector<int> s = stream_of(50);
  const int ctx = 8;
  const LlamaPerplexityChunks c(s, ctx, kBos, 0, "t");
  ASSERT_EQ(c.chunks(), 6);
  EXPECT_EQ(c.num_batches(4, ctx), 2);
  EXPECT_THROW(c.num_batches(4, ctx + 1), Error);
  std::vector<int> tok(4 * ctx), tgt(4 * ctx), one_tok(ctx), one_tgt(ctx);
  c.batch(1, 4, ctx, tok.data(), tgt.data());  // chunks 4, 5 and two padding rows
  for (int b = 0; b < 2; ++b) {
    c.chunk(4 + b, one_tok.data(), one_tgt.data());
    EXPECT_EQ(std::vector<int>(tok.begin() + b * ctx, tok.begin() + (b + 1) * ctx), one_tok);
    EXPECT_EQ(std::vector<int>(tgt.begin() + b * ctx, tgt.begin() + (b + 1) * ctx), one_tgt);
  }
  for (int t = 2 * ctx; t < 4 * ctx; ++t) EXPECT_EQ(tgt[t], -1) << t;
}

TEST(LlamaPerplexityChunks, RefusesATextShorterThanTwoChunks) {
  // llama.cpp: "you need at least 2*n_ctx tokens"
  EXPECT_NO_THROW(LlamaPerplexityChunks(stream_of(16), 8, kBos, 0, "t"));
  const std::string msg = test::error_of([] { LlamaPerplexityChunks(stream_of(15), 8, kBos, 0, "story.txt"); });
  EXPECT_NE(msg.find("story.txt"), std::string::npos) << msg;
  EXPECT_NE(msg.find("15 tokens"), std::string::npos) << msg;
  EXPECT_NE(msg.find("at least 16"), std::string::npos) << msg;
}

TEST(LlamaPerplexityChunks, RefusesAContextThatScoresNothing) {
  // ctx 2: first = 1 and position 1 is the chunk's last, so no position would be scored
  EXPECT_NE(test::error_of([] { LlamaPerplexityChunks(stream_of(10), 2, kBos, 0, "t"); }).find("--ctx 2"),
            std::string::npos);
  EXPECT_THROW(LlamaPerplexityChunks(stream_of(100), 8, kBos, -1, "t"), Error);
}

}  // namespace
}  // namespace qtune
