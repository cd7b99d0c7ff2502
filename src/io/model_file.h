// io/model_file.h — a LLaMA-family model as stored on disk, independent of the format.
//
// Tensor names and shapes (outermost first, float, dequantized if the file was quantized):
//   token_embd.weight            [vocab, dim]
//   blk.N.attn_norm.weight       [dim]
//   blk.N.attn_q.weight          [n_heads*head_dim, dim]
//   blk.N.attn_k.weight          [kv_dim, dim]
//   blk.N.attn_v.weight          [kv_dim, dim]
//   blk.N.attn_output.weight     [dim, n_heads*head_dim]
//   blk.N.ffn_norm.weight        [dim]
//   blk.N.ffn_gate.weight        [hidden, dim]    (llama2.c w1)
//   blk.N.ffn_down.weight        [dim, hidden]    (llama2.c w2)
//   blk.N.ffn_up.weight          [hidden, dim]    (llama2.c w3)
//   output_norm.weight           [dim]
//   output.weight                [vocab, dim]     absent when the classifier is tied
// RoPE rotates adjacent pairs (llama2.c and GGUF "llama" both do), so no permutation is needed.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/ggml_blocks.h"
#include "quant/quant.h"

namespace qtune {

struct LlamaConfig {
  int dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0, seq_len = 0;
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  bool tied_classifier = true;
  int head_dim() const { return dim / n_heads; }
  int kv_dim() const { return head_dim() * n_kv_heads; }
};

// A float tensor still on disk (a streaming load, open_model): read and converted on demand,
// so a model is built holding one float tensor at a time, never the whole float file.
struct LazyTensor {
  Shape shape;                   // outermost first
  GgmlType type = GgmlType::F32; // as stored: F32, F16, BF16 or a block type, converted when read
  uint64_t offset = 0;           // absolute byte offset in its file
  size_t nbytes = 0;
  int file = 0;                  // which of the LazySource's files (a sharded checkpoint has several)
  // > 0: the rows are in Hugging Face's rotate-half order (io/hf_layout.h) for heads of this
  // size; reading moves them back to qtune's adjacent-pair order (attn_q / attn_k of an HF file).
  int64_t hf_head_dim = 0;
};

// The open files lazy tensors are read from (pread: nothing is mapped, so a read tensor's pages
// never stay in RSS). Shared by copies of a ModelFile; closed with the last one.
class LazySource {
 public:
  struct FileSize {
    std::string path;
    size_t size = 0;  // as validated when the header was read
  };
  explicit LazySource(const std::string& path, size_t expected_size);  // throws Error naming path
  // Several files, LazyTensor::file indexing them in this order (the shards of a checkpoint).
  explicit LazySource(const std::vector<FileSize>& files);
  LazySource(const LazySource&) = delete;
  LazySource& operator=(const LazySource&) = delete;
  ~LazySource();
  // Reads t into dst (t's element count floats) and converts it; throws Error naming the file and
  // tensor if the file has been cut short since it was opened.
  void read(const std::string& name, const LazyTensor& t, float* dst) const;
  const std::string& path(int file = 0) const { return files_.at(size_t(file)).path; }
  size_t file_count() const { return files_.size(); }

 private:
  struct Open {
    std::string path;
    int fd = -1;
  };
  std::vector<Open> files_;
};

struct ModelFile {
  LlamaConfig config;
  TensorMap tensors;
  // Float tensors not yet read (open_model), by name; a name is in `tensors`, `quantized` or
  // here, never two. Read them with read_float / read_float_into (which check them finite).
  std::map<std::string, LazyTensor> lazy;
  std::shared_ptr<const LazySource> source;  // set when `lazy` is non-empty
  // Integer weights (deployed / quantized models), by tensor name ("blk.0.attn_q.weight"): the
  // weight is the sum of the planes (one, except for values wider than 16 bits: see
  // quant/int_planes.h). Only the seven projections of each block can be integer; a name is in
  // `tensors` or here, never both.
  std::map<std::string, std::vector<QuantMatrix>> quantized;
  // The activation quantization the model was fine-tuned with, recorded by `qtune merge`:
  // act_bits 0 = float activations, 8 = int8; act_scales = the calibrated static per-tensor
  // int8 scale of each projection's input, by stem ("blk.0.attn_q"); a projection without one
  // quantizes its input per token (dynamic).
  int act_bits = 0;
  std::map<std::string, float> act_scales;
  // The classifier as the file stores it when that is Q8_0 / Q4_0 / Q4_1 (output.weight, or
  // token_embd.weight when tied), decoded exactly (io/gguf_int.h); its float copy stays in
  // `tensors`. Inference decodes (Llama::step) on it; writers ignore it. Empty otherwise.
  std::vector<QuantMatrix> classifier_blocks;
  std::string path;    // where it came from (for messages)
  std::string format;  // "llama2c-v0", "llama2c-v1", "gguf", "hf-safetensors"
  // The files the weights were read from when they are not `path` itself (the safetensors
  // shards of a Hugging Face checkpoint, in order), for `qtune info`.
  std::vector<std::string> weight_files;
  // Quantized tensor types as stored, by name (e.g. "Q4_0"), for `qtune info`; empty for float files.
  std::map<std::string, std::string> stored_types;
};

// Every tensor a LLaMA model of config c has, with its shape (the list at the top of this file).
struct TensorSpec {
  std::string name;
  Shape shape;
};
std::vector<TensorSpec> model_tensor_specs(const LlamaConfig& c);

// Throws Error naming the tensor if a required tensor is missing or has the wrong shape.
void validate_model(const ModelFile& m);

// Throws Error "<file>: tensor '<name>': element [r, c] is nan (...)" at the first NaN or Inf
// of t: a non-finite weight makes every output NaN, and nothing downstream says why.
void check_finite(const std::string& file, const std::string& name, const Tensor& t);
// check_finite on every float tensor (lazy ones read one at a time, so memory stays at one
// tensor) and on the scales and zero points of every integer plane.
void check_model_finite(const ModelFile& m);

// Whether `name` is a float tensor of m, in memory or still on disk.
bool has_float(const ModelFile& m, const std::string& name);
// The shape of float tensor `name` (in memory or lazy); throws Error if m has none.
const Shape& float_shape(const ModelFile& m, const std::string& name);
// A float tensor's values: copied from `tensors` or read from disk (lazy), checked finite.
// Throws Error naming the file and tensor (missing, wrong element count n, truncated, NaN).
Tensor read_float(const ModelFile& m, const std::string& name);
void read_float_into(const ModelFile& m, const std::string& name, float* dst, int64_t n);
// Forgets a weight wherever it is (tensors, quantized, lazy): its form is held elsewhere now.
void release_weight(ModelFile& m, const std::string& name);
// Reads every lazy tensor into `tensors` (the whole float model in memory).
void materialize(ModelFile& m);

// The float value of a weight, from `tensors` or dequantized from its planes.
Tensor weight_as_float(const ModelFile& m, const std::string& name);
// Moves every integer weight into `tensors` as float (for tools that need float weights).
void dequantize_all(ModelFile& m);
// Moves every float projection (blk.N.attn_q/k/v/output, ffn_gate/up/down weights; never the
// embedding or an untied output) into `quantized`, quantized to spec.
void quantize_projections(ModelFile& m, const QuantSpec& spec);

// Sniffs the format and loads it: a Hugging Face checkpoint (a folder with config.json, that
// config.json, or a .safetensors file next to one: io/hf_model.h), else by the first bytes (GGUF
// magic, llama2.c v1 "ak42" magic, else a llama2.c legacy header). Throws Error naming the file for anything inconsistent, and naming the tensor for a
// NaN or Inf weight (check_model_finite).
ModelFile load_model(const std::string& path);
// The same checks of the header, layout, sizes and shapes, but float tensors stay on disk
// (ModelFile::lazy) until read; each is checked finite when it is read. Integer weights are
// loaded (they are small) and checked. For tools that build a model from the file once
// (finetune, eval, generate, info): peak memory is their own form plus one float tensor.
ModelFile open_model(const std::string& path);

}  // namespace qtune
