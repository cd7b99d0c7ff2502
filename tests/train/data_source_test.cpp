// The io/dataset adapters: Batcher state survives a checkpoint round trip through
// BatcherSource, and DatasetEval pads the last batch without scoring the padding.
#include <vector>

#include "core/error.h"
#include "test_util.h"
#include "train/data_source.h"

namespace qtune {
namespace {

// n windows of length T whose tokens encode (window, position), all targets scored.
Dataset make_dataset(int64_t n, int T) {
  Dataset d;
  d.seq_len = T;
  d.n_windows = n;
  for (int64_t w = 0; w < n; ++w)
    for (int t = 0; t < T; ++t) d.tokens.push_back(static_cast<int32_t>(w * 100 + t)), d.targets.push_back(t);
  return d;
}

TEST(BatcherSource, StateRoundTripContinuesTheStream) {
  const Dataset d = make_dataset(7, 4);
  Batcher a(d, 3, 11);
  BatcherSource sa(a, 4);
  Rng unused(0);
  std::vector<int> tok(12), tgt(12);
  for (int i = 0; i < 4; ++i) sa.next(3, 4, tok.data(), tgt.data(), unused);  // crosses an epoch
  const std::vector<uint64_t> st = sa.state();
  ASSERT_EQ(st.size(), 6u);
  std::vector<std::vector<int>> want;
  for (int i = 0; i < 5; ++i) sa.next(3, 4, tok.data(), tgt.data(), unused), want.push_back(tok);

  Batcher b(d, 3, 999);  // another seed: only the restored state decides what comes next
  BatcherSource sb(b, 4);
  sb.set_state(st);
  for (int i = 0; i < 5; ++i) {
    sb.next(3, 4, tok.data(), tgt.data(), unused);
    EXPECT_EQ(tok, want[i]) << "batch " << i;
  }
  EXPECT_THROW(sb.set_state({1, 2, 3}), Error);
  EXPECT_THROW(sb.next(2, 4, tok.data(), tgt.data(), unused), Error);
}

TEST(DatasetEval, PadsTheLastBatchUnscored) {
  const Dataset d = make_dataset(5, 4);
  DatasetEval ev(d);
  EXPECT_EQ(ev.num_batches(2, 4), 3);
  EXPECT_THROW(ev.num_batches(2, 8), Error);
  std::vector<int> tok(8), tgt(8);
  ev.batch(1, 2, 4, tok.data(), tgt.data());
  EXPECT_EQ(tok[0], 200);  // window 2, position 0
  EXPECT_EQ(tok[7], 303);  // window 3, position 3
  ev.batch(2, 2, 4, tok.data(), tgt.data());
  EXPECT_EQ(tok[3], 403);
  for (int t = 4; t < 8; ++t) EXPECT_EQ(tgt[t], -1);
  for (int t = 0; t < 4; ++t) EXPECT_EQ(tgt[t], t);
}

}  // namespace
}  // namespace qtune
