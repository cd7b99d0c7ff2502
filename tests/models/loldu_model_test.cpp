// LoLDU on the real stories260K (docs/METHODS.md §7): every init starts the whole model at its base.
#include <gtest/gtest.h>

#include "adapters/ldu.h"
#include "io/model_file.h"
#include "models/llama.h"
#include "test_util.h"

using namespace qtune;

namespace {
MethodOptions loldu_opts(const std::string& method, const std::string& init, int rank) {
  MethodOptions o;
  o.method = method;
  o.rank = rank;
  o.loldu_init = init;
  return o;
}
}  // namespace

// The model's logits at init equal the base model's
// (float: the pretrained weights; 4-bit: the qlora base), every init, relative ≤ 1e-5.
TEST(LolduStart, Stories260KLogitsEqualTheBaseModelsForEveryInit) {
  const std::string path = test::shared_dir() + "/models/stories260K/stories260K.bin";
  QT_REQUIRE_SHARED(path);
  const ModelFile mf = load_model(path);
  std::vector<int> tokens = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315};
  const int T = static_cast<int>(tokens.size());
  auto logits = [&](const MethodOptions& o) {
    Llama model(mf, o, 1);
    model.forward(tokens.data(), nullptr, 1, T);
    return std::vector<float>(model.logits(), model.logits() + int64_t(T) * model.config().vocab_size);
  };
  MethodOptions lora;
  MethodOptions qlora;
  qlora.method = "qlora";
  const std::vector<float> base_f = logits(lora), base_q = logits(qlora);
  EXPECT_GT(test::rel_err(base_q.data(), base_f.data(), base_f.size()), 1e-3) << "the 4-bit base must differ";
  for (const char* m : {"loldu", "qloldu", "qaloldu"})
    for (const std::string init : loldu_inits())
      for (int rank : {8, kFullRank}) {
        SCOPED_TRACE(std::string(m) + " " + init + " rank " + rank_str(rank));
        const std::vector<float> got = logits(loldu_opts(m, init, rank));
        const std::vector<float>& want = std::string(m) == "loldu" ? base_f : base_q;
        EXPECT_LE(test::rel_err(got.data(), want.data(), want.size()), 1e-5);
      }
}
