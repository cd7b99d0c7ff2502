// Hugging Face LLaMA checkpoint folders (io/hf_model.h): the same random weights written in
// llama2.c form and in HF form (names, rotate-half q/k rows, F32 / F16 / BF16, one file or
// shards with an index) load to identical tensors; each malformed folder gives one clear error.
#include "io/hf_model.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>

#include "hf_checkpoint_util.h"
#include "io/gguf_model.h"
#include "io/llama2c.h"
#include "models/tiny_model.h"
#include "io/model_compare.h"
#include "test_util.h"

namespace qtune {
namespace {

using test::error_of;

// A tiny random LLaMA with GQA (4 heads, 2 kv heads, head_dim 4) whose norm_eps is llama2.c's.
ModelFile tiny(bool tied) {
  ModelFile m = test::tiny_model(tied, tied ? 11 : 12);
  m.config.norm_eps = 1e-5f;
  return m;
}

using test::expect_same_model;

TEST(HfModel, F32CheckpointEqualsItsLlama2cFormTiedAndUntied) {
  for (bool tied : {false, true}) {
    const std::string dir = test::scratch_dir() + (tied ? "/tied" : "/untied");
    ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
    const ModelFile m = tiny(tied);
    save_llama2c_v1(m, dir + "/m.bin");
    test::write_hf_checkpoint(m, dir);
    const ModelFile l2c = load_model(dir + "/m.bin"), hf = load_model(dir);
    EXPECT_EQ(hf.format, "hf-safetensors");
    EXPECT_EQ(hf.path, dir);
    expect_same_model(hf, l2c);
    // the q/k rows really were moved: the file holds them permuted, the model does not
    const SafetensorsFile st(dir + "/model.safetensors");
    const Tensor q = st.to_float("model.layers.1.self_attn.q_proj.weight");
    EXPECT_NE(std::memcmp(q.ptr(), l2c.tensors.at("blk.1.attn_q.weight").ptr(), q.data.size() * 4), 0);
    // the folder may also be named by its config.json or its weights file
    expect_same_model(load_model(dir + "/config.json"), l2c);
    expect_same_model(load_model(dir + "/model.safetensors"), l2c);
  }
}

TEST(HfModel, ShardedCheckpointWithIndexEqualsOneFile) {
  const std::string dir = test::scratch_dir();
  const ModelFile m = tiny(false);
  test::HfWriteOptions o;
  o.shards = 2;
  test::write_hf_checkpoint(m, dir, o);
  EXPECT_FALSE(test::exists(dir + "/model.safetensors"));
  const ModelFile hf = open_model(dir);
  ASSERT_EQ(hf.weight_files.size(), 2u);
  EXPECT_EQ(hf.weight_files[1], dir + "/model-00002-of-00002.safetensors");
  ASSERT_TRUE(hf.source);
  EXPECT_EQ(hf.source->file_count(), 2u);
  int in_second = 0;
  for (const auto& [name, t] : hf.lazy) in_second += t.file == 1;
  EXPECT_GT(in_second, 0);
  EXPECT_LT(in_second, int(hf.lazy.size()));
  ModelFile loaded = hf;
  materialize(loaded);
  expect_same_model(loaded, m);
  EXPECT_EQ(hf_checkpoint_files(dir),
            (std::vector<std::string>{dir + "/config.json", dir + "/model.safetensors.index.json",
                                      dir + "/model-00001-of-00002.safetensors",
                                      dir + "/model-00002-of-00002.safetensors"}));
}

TEST(HfModel, StreamedTensorsEqualEagerOnesAndFileStaysClosedAfter) {
  const std::string dir = test::scratch_dir();
  test::HfWriteOptions o;
  o.dtype = SafetensorsDtype::BF16;
  o.shards = 3;
  test::write_hf_checkpoint(tiny(true), dir, o);
  const ModelFile eager = load_model(dir);
  ModelFile lazy = open_model(dir);
  EXPECT_TRUE(lazy.tensors.empty());
  EXPECT_TRUE(eager.lazy.empty() && !eager.source);
  for (const auto& [name, t] : eager.tensors) {
    const Tensor r = read_float(lazy, name);
    EXPECT_EQ(std::memcmp(r.ptr(), t.ptr(), t.data.size() * 4), 0) << name;
  }
  materialize(lazy);
  EXPECT_FALSE(lazy.source);
}

TEST(HfModel, F16AndBf16CheckpointsEqualTheRoundedWeights) {
  for (SafetensorsDtype d : {SafetensorsDtype::F16, SafetensorsDtype::BF16}) {
    const std::string dir = test::scratch_dir();
    const ModelFile m = tiny(false);
    test::HfWriteOptions o;
    o.dtype = d;
    test::write_hf_checkpoint(m, dir, o);
    const ModelFile hf = load_model(dir);
    expect_same_model(hf, test::rounded_to(m, d));
    EXPECT_EQ(hf.stored_types.at("blk.0.attn_k.weight"), safetensors_dtype_name(d));
    // the rounding is real: an F32 weight differs from its rounded value somewhere
    EXPECT_NE(std::memcmp(hf.tensors.at("token_embd.weight").ptr(), m.tensors.at("token_embd.weight").ptr(),
                          m.tensors.at("token_embd.weight").data.size() * 4), 0);
  }
}

TEST(HfModel, GgufBf16TensorsAreRead) {
  const std::string dir = test::scratch_dir();
  const ModelFile m = tiny(false);
  GgufSaveOptions o;
  o.weight_type = GgmlType::BF16;
  save_model_gguf(m, dir + "/m.gguf", o);
  const ModelFile g = load_model(dir + "/m.gguf");
  EXPECT_EQ(g.stored_types.at("blk.0.ffn_up.weight"), "BF16");
  // the writer keeps norms F32; every tensor it stored as BF16 reads back as the rounded value
  ModelFile want = m, rounded = test::rounded_to(m, SafetensorsDtype::BF16);
  for (const auto& [name, type] : g.stored_types) {
    EXPECT_EQ(type, "BF16") << name;
    want.tensors[name] = rounded.tensors.at(name);
  }
  EXPECT_GE(g.stored_types.size(), size_t(7 * m.config.n_layers));
  expect_same_model(g, want);
  EXPECT_EQ(ggml_type_from_name("bf16"), GgmlType::BF16);
  EXPECT_EQ(ggml_row_bytes(GgmlType::BF16, 5), 10u);
}

TEST(HfModel, TiedLmHeadAndInvFreqAreIgnored) {
  const std::string dir = test::scratch_dir();
  ModelFile m = tiny(true);
  test::HfWriteOptions o;
  o.lm_head_when_tied = true;
  test::write_hf_checkpoint(m, dir, o);
  // add a derived rotary table as old transformers saved it
  std::map<std::string, Tensor> t = test::hf_tensors(m, true);
  Tensor inv({2});
  t["model.layers.0.self_attn.rotary_emb.inv_freq"] = inv;
  std::vector<SafetensorsEntry> e;
  for (const auto& [name, w] : t) e.push_back({name, w.shape, w.ptr(), SafetensorsDtype::F32});
  write_safetensors(dir + "/model.safetensors", e);
  const ModelFile hf = load_model(dir);
  EXPECT_TRUE(hf.config.tied_classifier);
  expect_same_model(hf, m);
}

TEST(HfModel, CheckpointDirOfAPath) {
  const std::string dir = test::scratch_dir();
  test::write_hf_checkpoint(tiny(false), dir);
  EXPECT_EQ(hf_checkpoint_dir(dir), dir);
  EXPECT_EQ(hf_checkpoint_dir(dir + "/config.json"), dir);
  EXPECT_EQ(hf_checkpoint_dir(dir + "/model.safetensors"), dir);
  EXPECT_EQ(hf_checkpoint_dir(dir + "/absent"), std::nullopt);
  save_llama2c_v1(tiny(false), dir + "/m.bin");
  EXPECT_EQ(hf_checkpoint_dir(dir + "/m.bin"), std::nullopt);
  EXPECT_EQ(hf_tokenizer_path(dir), "");
  write_text_file_atomic(dir + "/tokenizer.model", "x");
  EXPECT_EQ(hf_tokenizer_path(dir + "/config.json"), dir + "/tokenizer.model");
  EXPECT_EQ(hf_tokenizer_path(dir + "/m.bin"), "");
}

// ---- config.json refusals ----

std::string config_error(const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = test::hf_config(tiny(false).config);
  edit(j);
  return error_of([&] { parse_hf_config(j.dump(), "c/config.json"); });
}

TEST(HfModel, ConfigRefusalsNameTheFileAndTheValue) {
  auto has = [](const std::string& msg, const std::string& want) {
    EXPECT_NE(msg.find(want), std::string::npos) << msg << "\n  expected: " << want;
    EXPECT_EQ(msg.rfind("c/config.json: ", 0), 0u) << msg;
  };
  EXPECT_EQ(config_error([](nlohmann::json&) {}), "(no error)");
  has(config_error([](auto& j) { j["model_type"] = "mistral"; }), "model_type \"mistral\" is not supported");
  has(config_error([](auto& j) { j["architectures"] = {"MistralForCausalLM"}; }),
      "architectures [\"MistralForCausalLM\"] is not supported");
  has(config_error([](auto& j) { j.erase("model_type"), j.erase("architectures"); }), "neither \"model_type\"");
  has(config_error([](auto& j) { j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}}; }),
      "rope_scaling {\"factor\":2.0,\"type\":\"linear\"} is not supported");
  has(config_error([](auto& j) { j["head_dim"] = 8; }), "head_dim 8 is not supported");
  EXPECT_EQ(config_error([](auto& j) { j["head_dim"] = 4; }), "(no error)");
  has(config_error([](auto& j) { j["attention_bias"] = true; }), "attention_bias true is not supported");
  has(config_error([](auto& j) { j["mlp_bias"] = true; }), "mlp_bias true is not supported");
  has(config_error([](auto& j) { j["hidden_act"] = "gelu"; }), "hidden_act \"gelu\" is not supported");
  has(config_error([](auto& j) { j.erase("hidden_size"); }), "\"hidden_size\" is missing");
  has(config_error([](auto& j) { j["num_hidden_layers"] = "2"; }), "\"num_hidden_layers\" is \"2\", expected a positive");
  has(config_error([](auto& j) { j["vocab_size"] = -3; }), "\"vocab_size\" is -3");
  has(config_error([](auto& j) { j["tie_word_embeddings"] = 1; }), "\"tie_word_embeddings\" is 1, expected true or false");
  has(config_error([](auto& j) { j["num_key_value_heads"] = 3; }), "n_heads 4 is not a multiple of n_kv_heads 3");
  has(error_of([] { parse_hf_config("{\"hidden_size\": ", "c/config.json"); }), "not valid JSON");
  has(error_of([] { parse_hf_config("[1]", "c/config.json"); }), "expected a JSON object");
  has(error_of([] { parse_hf_config("{\"model_type\": \"ll\xff\"}", "c/config.json"); }), "not valid JSON");
  // defaults: kv heads = heads, eps 1e-6, theta 10000, untied
  nlohmann::json j = test::hf_config(tiny(true).config);
  for (const char* k : {"num_key_value_heads", "rms_norm_eps", "rope_theta", "tie_word_embeddings"}) j.erase(k);
  const LlamaConfig c = parse_hf_config(j.dump(), "c");
  EXPECT_EQ(c.n_kv_heads, c.n_heads);
  EXPECT_EQ(c.norm_eps, 1e-6f);
  EXPECT_EQ(c.rope_theta, 10000.0f);
  EXPECT_FALSE(c.tied_classifier);
}

// ---- weight refusals ----

struct BadFolder : ::testing::Test {
  std::string dir;
  ModelFile m = tiny(false);
  void SetUp() override { dir = test::scratch_dir(); }
  std::string load_error() { return error_of([&] { open_model(dir); }); }
  void expect(const std::string& msg, const std::string& file, const std::string& want) {
    EXPECT_EQ(msg.rfind(file + ": ", 0), 0u) << msg << "\n  expected to start with " << file;
    EXPECT_NE(msg.find(want), std::string::npos) << msg << "\n  expected: " << want;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  void write_single(const std::map<std::string, Tensor>& t, SafetensorsDtype d = SafetensorsDtype::F32) {
    std::vector<SafetensorsEntry> e;
    for (const auto& [name, w] : t) e.push_back({name, w.shape, w.ptr(), d});
    write_safetensors(dir + "/model.safetensors", e);
  }
};

TEST_F(BadFolder, NoConfigOrNoWeights) {
  expect(load_error(), dir, "not a regular file (a directory), and no config.json in it");
  write_text_file_atomic(dir + "/config.json", test::hf_config(m.config).dump());
  expect(load_error(), dir, "no model.safetensors or model.safetensors.index.json");
  write_text_file_atomic(dir + "/pytorch_model.bin", "x");
  expect(load_error(), dir, "only safetensors weights are read");
}

TEST_F(BadFolder, MissingShardShardWithoutATensorAndTensorInTwoShards) {
  test::HfWriteOptions o;
  o.shards = 2;
  test::write_hf_checkpoint(m, dir, o);
  const std::string s1 = dir + "/model-00001-of-00002.safetensors", s2 = dir + "/model-00002-of-00002.safetensors";
  const std::string index = dir + "/model.safetensors.index.json";
  // a tensor listed for shard 2 that shard 2 lacks
  std::map<std::string, Tensor> all = test::hf_tensors(m);
  SafetensorsFile f2(s2);
  const std::string moved = f2.tensors().front().name;
  std::vector<SafetensorsEntry> e;
  for (const auto& t : f2.tensors())
    if (t.name != moved) e.push_back({t.name, t.shape, all.at(t.name).ptr(), SafetensorsDtype::F32});
  write_safetensors(s2, e);
  expect(load_error(), s2, "tensor '" + moved + "' listed for it in model.safetensors.index.json is missing");
  // ... and put into shard 1 as well as shard 2
  SafetensorsFile f1(s1);
  e.clear();
  for (const auto& t : f1.tensors()) e.push_back({t.name, t.shape, all.at(t.name).ptr(), SafetensorsDtype::F32});
  e.push_back({moved, all.at(moved).shape, all.at(moved).ptr(), SafetensorsDtype::F32});
  write_safetensors(s1, e);
  expect(load_error(), s1, "tensor '" + moved + "' is listed for model-00002-of-00002.safetensors");
  e.clear();
  for (const auto& t : f2.tensors()) e.push_back({t.name, t.shape, all.at(t.name).ptr(), SafetensorsDtype::F32});
  write_safetensors(s2, e);
  expect(load_error(), s2, "tensor '" + moved + "' is also in " + s1);
  // a shard the index names is not there
  ::unlink(s2.c_str());
  expect(load_error(), s2, "shard 'model-00002-of-00002.safetensors' listed in model.safetensors.index.json is missing");
  write_text_file_atomic(index, "{\"weight_map\": {\"model.norm.weight\": \"../x.safetensors\"}}");
  expect(load_error(), index, "'../x.safetensors' is not a file name in the checkpoint's folder");
  write_text_file_atomic(index, "{\"metadata\": {}}");
  expect(load_error(), index, "no \"weight_map\" object");
}

TEST_F(BadFolder, WrongDtypeShapeMissingAndUnknownTensors) {
  write_text_file_atomic(dir + "/config.json", test::hf_config(m.config).dump());
  const std::string st = dir + "/model.safetensors";
  std::map<std::string, Tensor> t = test::hf_tensors(m);
  // a float tensor relabelled I32 (same size) in the header
  write_single(t);
  std::string bytes = read_text_file(st);
  const size_t at = bytes.find("\"F32\"", bytes.find("\"model.norm.weight\""));
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at, 5, "\"I32\"");
  write_text_file_atomic(st, bytes);
  expect(load_error(), st, "tensor 'model.norm.weight' has dtype I32 (F32, F16 and BF16 are read)");

  std::map<std::string, Tensor> u = t;
  u["model.norm.weight"] = Tensor({m.config.dim + 1});
  write_single(u);
  expect(load_error(), st, "tensor 'model.norm.weight' has shape [17], config.json needs [16]");

  u = t;
  u.erase("model.layers.1.mlp.up_proj.weight");
  write_single(u);
  expect(load_error(), st, "tensor 'model.layers.1.mlp.up_proj.weight' is missing");

  u = t;
  u.erase("lm_head.weight");
  write_single(u);
  expect(load_error(), st, "lm_head.weight is missing and config.json's tie_word_embeddings is false");

  u = t;
  u["model.layers.0.self_attn.q_proj.bias"] = Tensor({16});
  write_single(u);
  expect(load_error(), st, "tensor 'model.layers.0.self_attn.q_proj.bias' is not part of a LLaMA model");

  u = t;
  u["model.layers.2.input_layernorm.weight"] = Tensor({16});
  write_single(u);
  expect(load_error(), st, "does not fit config.json (num_hidden_layers 2)");

  write_single(t);  // truncated: the header says more than the file holds
  bytes = read_text_file(st);
  write_text_file_atomic(st, bytes.substr(0, bytes.size() - 10));
  expect(load_error(), st, "truncated");
}

TEST_F(BadFolder, ConfigErrorsNameConfigJson) {
  test::write_hf_checkpoint(m, dir);
  nlohmann::json j = test::hf_config(m.config);
  j["model_type"] = "gpt2";
  write_text_file_atomic(dir + "/config.json", j.dump());
  expect(load_error(), dir + "/config.json", "model_type \"gpt2\" is not supported");
  j = test::hf_config(m.config);
  j["hidden_size"] = 32;  // the weights no longer fit
  write_text_file_atomic(dir + "/config.json", j.dump());
  expect(load_error(), dir + "/model.safetensors", "config.json needs");
}

}  // namespace
}  // namespace qtune
