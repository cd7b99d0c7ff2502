// fuzz/seed_data.h — tiny valid inputs for the harnesses, made with qtune's own writers (and, for
// the two formats qtune does not write — tokenizer.bin and SentencePiece .model — with small
// writers here). Used by qtune_fuzz_seeds (the seed corpora) and by harnesses that need a fixed
// valid companion (a tokenizer to encode with, a base model to check an adapter against).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "adapters/linear.h"
#include "io/model_file.h"
#include "io/peft_adapter.h"
#include "io/tokenizer.h"
#include "train/checkpoint.h"

namespace qtune::fuzz {

// One layer, 2 heads, 1 kv head; weights from a fixed seed. dim and hidden must be even; block
// types (Q8_0, Q4_0, Q4_1) need row lengths that are multiples of 32.
ModelFile tiny_model(int dim, int hidden, int vocab, bool tied, uint32_t seed = 1);

// A SentencePiece-style vocabulary: <unk> <s> </s>, optionally the 256 byte tokens <0x00>..<0xFF>
// (ids 3..258, the llama layout), then "▁" and a few words and merges.
GgufVocab tiny_vocab(bool byte_tokens);
// The same pieces with "▁" → " " (llama2.c tokenizer.bin spelling), and their scores.
void llama2c_pieces(bool byte_tokens, std::vector<std::string>& pieces, std::vector<float>& scores);
// A llama2.c tokenizer.bin image.
std::string tokenizer_bin(const std::vector<std::string>& pieces, const std::vector<float>& scores);
// A SentencePiece ModelProto (serialized protobuf) over tiny_vocab(byte_tokens): model type
// unigram or BPE, identity normalizer, byte fallback when there are byte tokens.
std::string spm_model(bool bpe, bool byte_tokens);

// The trainable params / state of the checkpoint seeds and the checkpoint harness (which must
// agree on names and shapes): a rank-2 LoRA pair on blk.0.attn_q of an 8-dim model, and one
// state tensor. Owns the storage.
struct CheckpointModel {
  std::vector<std::vector<float>> storage;
  std::vector<Param<float>> params, state;
  RunKeys keys = {{"method", "lora"}, {"rank", "2"}};
  CheckpointModel();
  CheckpointModel(const CheckpointModel&) = delete;
};

// A rank-2 PEFT LoRA on q and v of tiny_model(8, 16, 8, false) (io/peft_adapter.h, qtune's names
// and layout), weights from a fixed seed: the seeds' and the PEFT harness's valid adapter.
PeftLora tiny_peft(const LlamaConfig& base);

void write_bytes(const std::string& path, const std::string& bytes);
std::string read_bytes(const std::string& path);

}  // namespace qtune::fuzz
