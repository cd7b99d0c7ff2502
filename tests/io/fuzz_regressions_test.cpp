// tests/io/fuzz_regressions_test.cpp — one test per bug the libFuzzer harnesses (fuzz/) found,
// named after the bug, on a minimal input that reproduces it. Each must end in qtune::Error.
#include <cstdio>
#include <cstring>
#include <string>

#include "core/error.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "io/tokenizer.h"
#include "io/tokenizer_spm.h"
#include "test_util.h"

namespace qtune {
namespace {

void write_bytes(const std::string& path, const std::string& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_TRUE(f);
  ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
  std::fclose(f);
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// fuzz_gguf_model (oom): a GGUF model whose llama.block_count is huge made load_gguf_model list
// 9 tensor names per block before the config was validated — 2^31 − 1 blocks ran out of memory.
// The config is now checked first; 2000 blocks (just over the limit of 1024) shows the order.
TEST(FuzzRegression, GgufHugeBlockCountIsRefusedBeforeListingTensors) {
  const std::string path = test::scratch_dir() + "/blocks.gguf";
  for (int32_t blocks : {2000, INT32_MAX}) {
    GgufWriter w;
    w.set_str("general.architecture", "llama");
    w.set_u32("llama.context_length", 8);
    w.set_u32("llama.embedding_length", 8);
    w.set_i32("llama.block_count", blocks);
    w.set_u32("llama.feed_forward_length", 16);
    w.set_u32("llama.attention.head_count", 2);
    w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
    Tensor emb({4, 8});
    w.add_tensor("token_embd.weight", emb, GgmlType::F32);
    w.write(path);
    const std::string e = error_of([&] { load_gguf_model(path); });
    EXPECT_NE(e.find("n_layers is " + std::to_string(blocks) + ", expected 1..1024"), std::string::npos) << e;
  }
}

// Protobuf helpers for a hand-made SentencePiece ModelProto.
std::string varint(uint64_t v) {
  std::string out;
  for (; v >= 0x80; v >>= 7) out += char(uint8_t(v) | 0x80);
  return out + char(uint8_t(v));
}
std::string bytes_field(int field, const std::string& b) { return varint(uint64_t(field) << 3 | 2) + varint(b.size()) + b; }
std::string piece(const std::string& text, int type) {
  const float score = -1.0f;
  std::string s = bytes_field(1, text) + varint(2 << 3 | 5);
  s.append(reinterpret_cast<const char*>(&score), 4);
  return bytes_field(1, s + varint(3 << 3) + varint(uint64_t(type)));
}

// fuzz_spm_model (crash): a unigram .model with a piece that is one NUL byte made
// libsentencepiece's trie builder throw Darts::Details::Exception ("zero-length key") out of
// SentencePieceProcessor::Load — not a qtune::Error, so `qtune` terminated.
TEST(FuzzRegression, SpmNulPieceIsAnErrorNotATerminate) {
  const std::string path = test::scratch_dir() + "/nul.model";
  const std::string trainer = varint(3 << 3) + varint(1);  // model_type: UNIGRAM
  const std::string normalizer = bytes_field(1, "identity");
  write_bytes(path, piece("<unk>", 2) + piece("<s>", 3) + piece("</s>", 3) + piece("a", 1) +
                        piece(std::string(1, '\0'), 1) + bytes_field(2, trainer) + bytes_field(3, normalizer));
  const std::string e = error_of([&] { SpmTokenizer t(path); });
  EXPECT_NE(e.find("not a valid SentencePiece model"), std::string::npos) << e;
  EXPECT_NE(e.find(path), std::string::npos) << e;
  // and through the sniffing loader, as `qtune --tokenizer` uses it
  EXPECT_NE(error_of([&] { load_tokenizer(path); }), "");
}

}  // namespace
}  // namespace qtune
