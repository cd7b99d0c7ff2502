// A step's gradient does not depend on how its batch was split (adapters/exact_grad.cpp,
// train/trainer.cpp): on stories260K, the rows of a batch give the same logits and the same
// per-sequence gradients alone as in the batch, and the exact sums of two halves, added, equal
// the whole batch's — what lets 2 MPI ranks × batch b train what 1 process × batch 2b trains.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/rng.h"
#include "io/model_file.h"
#include "models/llama.h"
#include "test_util.h"

namespace qtune {
namespace {

std::string model_path() { return test::shared_dir() + "/models/stories260K/stories260K.bin"; }

constexpr int kB = 8, kT = 32;

using Batch = test::TokenBatch;

Batch random_batch(int vocab, uint64_t seed) { return test::random_token_batch(kB, kT, vocab, seed, 7, 3); }

MethodOptions method(const std::string& name, int act_bits = 0) {
  MethodOptions o;
  o.method = name;
  o.rank = 4;
  o.act_bits = act_bits;
  o.exact_sums = true;
  return o;
}

// The logits of rows [r0, r0 + n) of the batch, run as a batch of n.
std::vector<float> logits(Llama& m, const Batch& b, int r0, int n) {
  m.forward(b.tokens.data() + r0 * kT, nullptr, n, kT);
  const int64_t V = m.config().vocab_size;
  return std::vector<float>(m.logits(), m.logits() + int64_t{n} * kT * V);
}

class ExactGrad : public ::testing::TestWithParam<std::string> {};

TEST_P(ExactGrad, RowsGiveTheSameLogitsAloneAsInTheBatch) {
  QT_REQUIRE_SHARED(model_path());
  Llama m(load_model(model_path()), method(GetParam()), 7);
  const Batch b = random_batch(m.config().vocab_size, 1);
  const std::vector<float> all = logits(m, b, 0, kB), half = logits(m, b, kB / 2, kB / 2);
  const size_t off = all.size() / 2;
  ASSERT_EQ(half.size(), all.size() - off);
  EXPECT_EQ(0, std::memcmp(half.data(), all.data() + off, half.size() * sizeof(float)));
}

// The exact gradient sums (Param::sum) of one training pass over rows [r0, r0 + n), with the
// loss averaged over `count` targets (the whole batch's), as copies.
std::vector<std::vector<double>> sums(Llama& m, const Batch& b, int r0, int n, int64_t count) {
  m.zero_grad();
  m.forward(b.tokens.data() + r0 * kT, b.targets.data() + r0 * kT, n, kT, true, count);
  m.backward();
  std::vector<std::vector<double>> out;
  for (const auto& p : m.trainable()) {
    EXPECT_NE(p.sum, nullptr) << p.name;
    if (!p.sum) return {};
    out.emplace_back(p.sum, p.sum + p.numel);
  }
  return out;
}

// What two MPI ranks compute and add (train/trainer.cpp) is what one process computes: each
// half's exact sums, added in double, round to the whole batch's float gradient bit for bit.
TEST_P(ExactGrad, TwoHalvesSumToTheWholeBatchsGradient) {
  QT_REQUIRE_SHARED(model_path());
  Llama m(load_model(model_path()), method(GetParam()), 7);
  const Batch b = random_batch(m.config().vocab_size, 2);
  const int64_t count = std::count_if(b.targets.begin(), b.targets.end(), [](int t) { return t >= 0; });
  // B ≠ 0 so every factor has a gradient: one step of training first
  for (const auto& p : m.trainable())
    for (int64_t j = 0; j < p.numel; ++j) p.value[j] += 0.01f * std::sin(float(j));
  const auto a = sums(m, b, 0, kB / 2, count), c = sums(m, b, kB / 2, kB / 2, count);
  const auto whole = sums(m, b, 0, kB, count);
  const auto params = m.trainable();
  ASSERT_EQ(whole.size(), params.size());
  int64_t n = 0, differ = 0;
  for (size_t i = 0; i < params.size(); ++i)
    for (int64_t j = 0; j < params[i].numel; ++j, ++n) {
      EXPECT_EQ(params[i].grad[j], float(whole[i][j])) << params[i].name;  // grad is the sum's rounding
      differ += float(a[i][j] + c[i][j]) != float(whole[i][j]);
    }
  EXPECT_EQ(differ, 0) << "of " << n << " gradient elements";
}

INSTANTIATE_TEST_SUITE_P(Methods, ExactGrad, ::testing::Values("lora", "qlora", "qalora", "intlora-mul", "intlora-shift",
                                                              "loldu", "qloldu", "qaloldu"));

}  // namespace
}  // namespace qtune
