// io/gguf_rules.h — what llama.cpp's GGUF model loader requires of a "llama" model file.
//
// Two questions, kept apart:
//  - check_llamacpp_model_rules: would llama.cpp's loader reject (or misread) the file? Sequential
//    aligned tensor offsets (gguf.cpp: "tensor has wrong offset"), block rows a multiple of the
//    block size, data inside the file; the llama.* hyper-parameters with llama.cpp's exact value
//    types (its get_key throws on "wrong type"); general.architecture = "llama"; the vocabulary
//    (tokenizer.ggml.model and .tokens are required by llama-vocab.cpp); every llama tensor with
//    the shape llama.cpp creates for it.
//  - llamacpp_unsupported: a well-formed file llama.cpp still cannot run: integer (I8/I16/I32)
//    weights, which ggml's matmul does not take, and tensors llama.cpp does not create (qtune's
//    ".scale" tensors): its loader stops with "wrong number of tensors".
// Both return one message per problem; empty = fine.
#pragma once
#include <string>
#include <vector>

namespace qtune {

class GgufFile;

std::vector<std::string> check_llamacpp_model_rules(const GgufFile& f);
std::vector<std::string> llamacpp_unsupported(const GgufFile& f);

// Tensor data offsets must be sequential, each padded to general.alignment, and end inside the
// file (shared with the LoRA adapter checker).
void check_llamacpp_layout(const GgufFile& f, std::vector<std::string>& violations);

}  // namespace qtune
