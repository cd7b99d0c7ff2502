// fuzz/fuzz_checkpoint.cpp — training checkpoints (train/checkpoint.h): load_checkpoint into a
// fixed set of params (the ones the seed checkpoints were written from, fuzz/seed_data.h).
#include "fuzz/fuzz_util.h"
#include "fuzz/seed_data.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"

using namespace qtune;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_input("ckpt.gguf", data, size);
  fuzz::CheckpointModel cm;
  AdamW opt(cm.params, AdamWOptions{});
  TrainState st;
  if (!fuzz::expect_error([&] { load_checkpoint(path, cm.params, opt, st, cm.keys, cm.state); })) return 0;
  QT_FUZZ_CHECK(st.loss_curve.size() == size_t(st.step));
  return 0;
}
