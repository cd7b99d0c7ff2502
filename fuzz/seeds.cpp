// fuzz/seeds.cpp — qtune_fuzz_seeds <dir>: writes the seed corpus of every harness to
// <dir>/<harness>/ (run by the build, so the seeds always match the current writers).
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "fuzz/seed_data.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "io/llama2c.h"
#include "io/lora_gguf.h"
#include "quant/int_planes.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"
#include "adapters/method_options.h"
#include "io/adapter_file.h"
#include "io/peft_adapter.h"
#include "io/safetensors.h"
#include "tests/hf_checkpoint_util.h"

namespace qtune::fuzz {
namespace {

std::string root;

std::string dir(const std::string& harness) {
  std::string d = root + "/" + harness;
  ::mkdir(d.c_str(), 0755);
  return d + "/";
}

// Writes the file at `path` into the other harnesses' directories too (same file name).
void copy_to(const std::string& path, std::initializer_list<const char*> harnesses) {
  const std::string bytes = read_bytes(path);
  const std::string name = path.substr(path.rfind('/') + 1);
  for (const char* h : harnesses) write_bytes(dir(h) + name, bytes);
}

void model_seeds() {
  const GgufVocab vocab = tiny_vocab(false);
  const int V = int(vocab.tokens.size());
  auto save = [&](const ModelFile& m, const std::string& name, GgmlType type, bool with_vocab) {
    GgufSaveOptions o;
    o.weight_type = type;
    o.vocab = with_vocab ? &vocab : nullptr;
    const std::string path = dir("gguf_model") + name;
    save_model_gguf(m, path, o);
    copy_to(path, {"gguf"});
  };
  save(tiny_model(8, 16, V, true), "f32_vocab.gguf", GgmlType::F32, true);
  save(tiny_model(8, 16, V, false), "f32_untied.gguf", GgmlType::F32, false);
  for (auto [type, name] : {std::pair{GgmlType::F16, "f16.gguf"}, {GgmlType::Q8_0, "q8_0.gguf"},
                            {GgmlType::Q4_0, "q4_0.gguf"}, {GgmlType::Q4_1, "q4_1.gguf"}})
    save(tiny_model(32, 32, 4, true, 2), name, type, false);

  // Every integer layout in one model (io/gguf_int.h): block types with exact keys, I8 with
  // groups, I16, a multi-plane I32, plus activation settings.
  ModelFile m = tiny_model(32, 64, 4, true, 3);
  auto quantize_one = [&](const char* w, QuantSpec spec) {
    const std::string name = fmt::format("blk.0.{}.weight", w);
    const Tensor t = m.tensors.at(name);
    std::vector<QuantMatrix> planes;
    planes.push_back(quantize(t.ptr(), t.shape[0], t.shape[1], spec));
    m.quantized[name] = std::move(planes);
    m.tensors.erase(name);
  };
  quantize_one("attn_q", {.bits = 4, .group = 32, .symmetric = true});  // Q4_0
  quantize_one("attn_k", {.bits = 4, .group = 0, .symmetric = false});  // Q4_1, per row
  quantize_one("attn_v", {.bits = 8, .group = 0, .symmetric = true});   // Q8_0
  quantize_one("attn_output", {.bits = 3, .group = 16, .symmetric = true});  // I8 + .scale + group size
  quantize_one("ffn_gate", {.bits = 16, .group = 0, .symmetric = true});     // I16
  {  // ffn_down: values beyond 16 bits → planes → one I32 tensor
    const int64_t rows = 32, cols = 64;
    std::vector<int32_t> v(size_t(rows * cols));
    for (size_t i = 0; i < v.size(); ++i) v[i] = int32_t(i * 977 % 200001) - 100000;
    std::vector<float> scale(size_t(rows), 1e-5f);
    m.quantized["blk.0.ffn_down.weight"] = planes_from_integers(v.data(), scale.data(), rows, cols);
    m.tensors.erase("blk.0.ffn_down.weight");
  }
  m.act_bits = 8;
  m.act_scales["blk.0.attn_q"] = 0.05f;
  m.act_scales["blk.0.ffn_up"] = 0.125f;
  save(m, "int_zoo.gguf", GgmlType::Q8_0, false);
}

void vocab_seeds() {
  for (bool bytes : {true, false}) {
    GgufWriter w;
    const GgufVocab v = tiny_vocab(bytes);
    w.set_str("general.architecture", "llama");
    w.set_str("tokenizer.ggml.model", "llama");
    w.set_arr_str("tokenizer.ggml.tokens", v.tokens);
    w.set_arr_f32("tokenizer.ggml.scores", v.scores);
    w.set_arr_i32("tokenizer.ggml.token_type", v.types);
    w.set_u32("tokenizer.ggml.bos_token_id", 1);
    w.set_u32("tokenizer.ggml.eos_token_id", 2);
    w.set_u32("tokenizer.ggml.unknown_token_id", 0);
    w.set_bool("tokenizer.ggml.add_space_prefix", bytes);
    const std::string path = dir("gguf_vocab") + (bytes ? "vocab_bytes.gguf" : "vocab_small.gguf");
    w.write(path);
    copy_to(path, {"gguf"});
  }
  copy_to(dir("gguf_model") + "f32_vocab.gguf", {"gguf_vocab"});
}

void llama2c_seeds() {
  // v1 through the writer; v0 (legacy) by hand: header, then the v0 tensor order with the RoPE
  // tables, and the classifier when untied (negative vocab_size).
  for (bool tied : {true, false}) {
    ModelFile m = tiny_model(8, 16, 8, tied);
    m.config.seq_len = 4;
    save_llama2c_v1(m, dir("llama2c") + (tied ? "v1_shared.bin" : "v1_unshared.bin"));
    const LlamaConfig& c = m.config;
    std::string out;
    auto put = [&](const void* p, size_t n) { out.append(static_cast<const char*>(p), n); };
    const int32_t header[7] = {c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads,
                               tied ? c.vocab_size : -c.vocab_size, c.seq_len};
    put(header, sizeof header);
    auto tensor = [&](const char* name) {
      const Tensor& t = m.tensors.at(name);
      put(t.ptr(), size_t(t.numel()) * 4);
    };
    for (const char* name : {"token_embd.weight", "blk.0.attn_norm.weight", "blk.0.attn_q.weight",
                             "blk.0.attn_k.weight", "blk.0.attn_v.weight", "blk.0.attn_output.weight",
                             "blk.0.ffn_norm.weight", "blk.0.ffn_gate.weight", "blk.0.ffn_down.weight",
                             "blk.0.ffn_up.weight", "output_norm.weight"})
      tensor(name);
    const std::vector<float> rope(size_t(2 * c.seq_len * c.head_dim() / 2), 0.5f);
    put(rope.data(), rope.size() * 4);
    if (!tied) tensor("output.weight");
    write_bytes(dir("llama2c") + (tied ? "v0_tied.bin" : "v0_untied.bin"), out);
  }
}

void tokenizer_seeds() {
  for (bool bytes : {true, false}) {
    std::vector<std::string> pieces;
    std::vector<float> scores;
    llama2c_pieces(bytes, pieces, scores);
    write_bytes(dir("tokenizer_bin") + (bytes ? "tok_bytes.bin" : "tok_small.bin"), tokenizer_bin(pieces, scores));
    for (bool bpe : {false, true})
      write_bytes(dir("spm_model") + fmt::format("{}_{}.model", bpe ? "bpe" : "unigram", bytes ? "bytes" : "small"),
                  spm_model(bpe, bytes));
  }
  // fuzz_tokenize: the input is the text
  const char* texts[] = {"Once upon a time, the cat sat.", "  two  spaces\tand\nnewlines\n", "ab bc abc the théé 日本",
                         "\xff\xfe broken \xc3 utf-8 \xe2\x96", "<s></s><unk><0x41>", "\xe2\x96\x81x\xe2\x96\x81"};
  int i = 0;
  for (const char* t : texts) write_bytes(dir("tokenize") + fmt::format("text{}.txt", i++), t);
}

void dataset_seeds() {
  // fuzz_dataset: byte 0 = format (0 .txt lines, 1 .txt whole file, 2 .jsonl) + 4·add_eos,
  // byte 1 = seq_len − 1, byte 2 = val_every, then the file.
  const std::pair<std::string, std::string> seeds[] = {
      {std::string("\x00\x07\x00", 3), "the cat\nab bc\n\nthe end\n"},
      {std::string("\x04\x03\x02", 3), "one\r\ntwo\r\nthree\r\nfour\r\n"},
      {std::string("\x01\x0f\x00", 3), "a whole file\nof text\n"},
      {std::string("\x02\x07\x00", 3), "{\"text\": \"the cat\"}\n{\"prompt\": \"Q: ab\", \"completion\": \" bc\"}\n"},
      {std::string("\x06\x01\x02", 3),
       "{\"text\": \"caf\\u00e9\"}\n\n{\"prompt\": \"\", \"completion\": \"x\"}\n{\"text\": \"y\"}\n"},
  };
  int i = 0;
  for (const auto& [head, body] : seeds) write_bytes(dir("dataset") + fmt::format("data{}", i++), head + body);
}

void checkpoint_seeds() {
  CheckpointModel cm;
  AdamW opt(cm.params, AdamWOptions{});
  for (int64_t k = 0; k < opt.size(); ++k) opt.m()[k] = 0.01f * float(k), opt.v()[k] = 0.001f * float(k);
  TrainState st;
  st.step = 2;
  opt.set_t(2);
  st.rng = {1, 2, 3, 4};
  st.data_state = {0, 5, 7, 8, 9, 10};
  st.loss_curve = {{1, 2.5f, 1e-3f}, {2, 2.25f, 1e-3f}};
  st.val_curve = {{2, 2.75f}};
  const std::string path = dir("checkpoint") + "ckpt.gguf";
  save_checkpoint(path, cm.params, opt, st, cm.keys, cm.state);
  copy_to(path, {"adapter", "gguf"});
}

void adapter_seeds() {
  // Shapes of blk.0.attn_q in tiny_model(8, 16, ...): [8, 8]; rank 2.
  TensorMap lora, state;
  Tensor a({2, 8}), b({8, 2}), s({8, 1}), amax({1});
  for (size_t i = 0; i < a.data.size(); ++i) a.data[i] = 0.125f * float(i % 5), b.data[i] = -0.25f * float(i % 3);
  for (auto& v : s.data) v = 0.5f;
  amax.data[0] = 3.0f;
  lora.emplace("blk.0.attn_q.lora_a", a);
  lora.emplace("blk.0.attn_q.lora_b", b);
  save_lora_gguf(dir("lora") + "plain_lora.gguf", lora, 16.0f);
  copy_to(dir("lora") + "plain_lora.gguf", {"adapter", "gguf"});

  MethodOptions lm;
  lm.rank = 2;
  lm.targets = {"q"};
  RunSettings lrun = settings_of(lm);
  lrun.emplace_back("seed", "7");
  write_lora_adapter(dir("adapter") + "lora_keys.gguf", lora, {}, lrun, lm.alpha);
  copy_to(dir("adapter") + "lora_keys.gguf", {"lora", "gguf"});

  MethodOptions qm = lm;
  qm.method = "qalora";
  qm.group = 32;
  qm.act_bits = 8;
  TensorMap qa = lora;
  qa.emplace("blk.0.attn_q.qalora_scale", s);
  state.emplace("blk.0.attn_q.act_amax", amax);
  RunSettings qrun = settings_of(qm);
  qrun.emplace_back("seed", "7");
  write_qtune_adapter(dir("adapter") + "qalora.gguf", qa, state, qrun);
  copy_to(dir("adapter") + "qalora.gguf", {"gguf"});
}

// fuzz_safetensors: the tiny model as a Hugging Face checkpoint's model.safetensors (F32 untied,
// the config the harness writes; BF16 and F16 variants) and config.json texts.
void safetensors_seeds() {
  const ModelFile m = tiny_model(8, 16, 8, false);
  const std::map<std::string, Tensor> t = test::hf_tensors(m);
  for (SafetensorsDtype d : {SafetensorsDtype::F32, SafetensorsDtype::BF16, SafetensorsDtype::F16}) {
    std::vector<SafetensorsEntry> e;
    for (const auto& [name, w] : t) e.push_back({name, w.shape, w.ptr(), d});
    write_safetensors(dir("safetensors") + "model_" + safetensors_dtype_name(d) + ".safetensors", e, {{"format", "pt"}});
  }
  write_bytes(dir("safetensors") + "config.json", test::hf_config(m.config).dump(2));
  nlohmann::json gqa = test::hf_config(tiny_model(8, 16, 8, true).config);
  gqa.erase("num_key_value_heads");
  gqa["rope_scaling"] = nullptr;
  write_bytes(dir("safetensors") + "config_defaults.json", gqa.dump());
}

// fuzz_peft: a valid PEFT folder's two files (the harness keeps the other one valid beside each).
void peft_seeds() {
  const LlamaConfig base = tiny_model(8, 16, 8, false).config;
  const std::string tmp = dir("peft") + "folder";
  write_peft_adapter(tmp, tiny_peft(base), base);
  write_bytes(dir("peft") + "adapter_config.json", read_bytes(tmp + "/adapter_config.json"));
  write_bytes(dir("peft") + "adapter_model.safetensors", read_bytes(tmp + "/adapter_model.safetensors"));
  std::remove((tmp + "/adapter_config.json").c_str());
  std::remove((tmp + "/adapter_model.safetensors").c_str());
  ::rmdir(tmp.c_str());
}

}  // namespace
}  // namespace qtune::fuzz

int main(int argc, char** argv) {
  using namespace qtune::fuzz;
  if (argc != 2) {
    std::fprintf(stderr, "usage: qtune_fuzz_seeds <dir>\n");
    return 2;
  }
  root = argv[1];
  ::mkdir(root.c_str(), 0755);
  try {
    model_seeds();
    vocab_seeds();
    llama2c_seeds();
    tokenizer_seeds();
    dataset_seeds();
    checkpoint_seeds();
    adapter_seeds();
    safetensors_seeds();
    peft_seeds();
  } catch (const qtune::Error& e) {
    std::fprintf(stderr, "qtune_fuzz_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
