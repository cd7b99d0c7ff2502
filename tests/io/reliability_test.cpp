// tests/io/reliability_test.cpp — issue 9 (reliability), the io part: non-regular inputs, NaN/Inf
// in models and adapters, GGUF semantics (overlapping data, tensors the model does not have,
// empty tokens), data files (byte order mark, extension case, .json) and messages that quote
// file content (escaped, shortened).
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include "core/error.h"
#include "core/file.h"
#include "core/rng.h"
#include "io/adapter_file.h"
#include "io/dataset.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "io/gguf_tokenizer.h"
#include "io/model_file.h"
#include "io/tokenizer.h"
#include "models/tiny_model.h"
#include "test_util.h"

namespace qtune {
namespace {

using test::error_of;

using test::error_within_10s;

bool has(const std::string& msg, const std::string& part) { return msg.find(part) != std::string::npos; }

std::string write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::string read_bytes(const std::string& path) { return read_text_file(path); }

// A complete llama model, dim 32 (so Q8_0/Q4 block types apply), 2 layers, vocab 8, untied.
ModelFile model32() {
  ModelFile m;
  LlamaConfig& c = m.config;
  c.dim = 32, c.hidden_dim = 64, c.n_layers = 2, c.n_heads = 2, c.n_kv_heads = 1, c.vocab_size = 8, c.seq_len = 16;
  c.tied_classifier = false;
  m.path = "model32";
  Rng rng(11);
  auto add = [&](const std::string& n, Shape s, double mean) {
    Tensor t(std::move(s));
    for (auto& v : t.data) v = float(mean + 0.3 * rng.normal());
    m.tensors.emplace(n, std::move(t));
  };
  add("token_embd.weight", {8, 32}, 0);
  add("output.weight", {8, 32}, 0);
  add("output_norm.weight", {32}, 1);
  for (int l = 0; l < 2; ++l) {
    auto n = [l](const char* w) { return fmt::format("blk.{}.{}.weight", l, w); };
    add(n("attn_norm"), {32}, 1);
    add(n("ffn_norm"), {32}, 1);
    add(n("attn_q"), {32, 32}, 0);
    add(n("attn_output"), {32, 32}, 0);
    add(n("attn_k"), {16, 32}, 0);
    add(n("attn_v"), {16, 32}, 0);
    add(n("ffn_gate"), {64, 32}, 0);
    add(n("ffn_up"), {64, 32}, 0);
    add(n("ffn_down"), {32, 64}, 0);
  }
  return m;
}

GgufVocab vocab8() {
  GgufVocab v;
  for (int i = 0; i < 8; i++) v.tokens.push_back(fmt::format("t{}", i));
  v.scores.assign(8, 0.0f);
  v.types.assign(8, 1);
  return v;
}

std::string save(const ModelFile& m, const std::string& path, GgmlType type, const GgufVocab* vocab = nullptr) {
  GgufSaveOptions o;
  o.weight_type = type;
  o.vocab = vocab;
  save_model_gguf(m, path, o);
  return path;
}

// Overwrites bytes of tensor `name`'s data at byte `at`.
void patch_tensor(const std::string& path, const std::string& name, size_t at, const void* bytes, size_t n) {
  size_t pos;
  {
    GgufFile f(path);
    const GgufTensorInfo* t = f.find_tensor(name);
    ASSERT_TRUE(t) << name;
    ASSERT_LE(at + n, t->nbytes);
    pos = f.data_offset() + t->offset + at;
  }
  std::string b = read_bytes(path);
  std::memcpy(b.data() + pos, bytes, n);
  write_file(path, b);
}

// Copy of a GGUF file with `edit` applied to a writer holding all of its keys and tensors.
template <class Edit>
std::string rewrite(const std::string& src, const std::string& dst, Edit&& edit) {
  GgufWriter w;
  {
    GgufFile f(src);
    for (const auto& [k, v] : f.metadata()) w.set(k, v);
    for (const auto& t : f.tensors())
      w.add_raw_tensor(t.name, t.ne, t.type, std::vector<uint8_t>(t.data, t.data + t.nbytes));
  }
  edit(w);
  w.write(dst);
  return dst;
}

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// ---- 2. non-regular inputs ------------------------------------------------------------------

TEST(ReliabilityIo, FifoAsModelTokenizerDataAdapterIsRefusedWithoutBlocking) {
  const std::string dir = test::scratch_dir();
  const std::string f = dir + "/fifo";
  ASSERT_EQ(::mkfifo(f.c_str(), 0600), 0);
  const std::string want = f + ": not a regular file (a FIFO)";
  EXPECT_EQ(error_within_10s([&] { load_model(f); }), want);
  EXPECT_EQ(error_within_10s([&] { load_tokenizer(f); }), want);
  EXPECT_EQ(error_within_10s([&] { read_documents(f); }), want);
  EXPECT_EQ(error_within_10s([&] { read_adapter(f); }), want);
  EXPECT_EQ(error_within_10s([&] { load_gguf_tokenizer(f); }), want);
  // A .model name goes straight to SentencePiece, which must not open the FIFO itself.
  const std::string spm = dir + "/fifo.model";
  ASSERT_EQ(::mkfifo(spm.c_str(), 0600), 0);
  EXPECT_EQ(error_within_10s([&] { load_tokenizer(spm); }), spm + ": not a regular file (a FIFO)");
}

TEST(ReliabilityIo, DirectoryIsADirectoryNotAnEmptyFile) {
  const std::string dir = test::scratch_dir();
  const std::string want = dir + ": not a regular file (a directory)";
  // a folder is a model only as a Hugging Face checkpoint (io/hf_model.h), which needs config.json
  EXPECT_EQ(error_of([&] { load_model(dir); }), want + ", and no config.json in it for a Hugging Face checkpoint folder");
  EXPECT_EQ(error_of([&] { load_tokenizer(dir); }), want);
  EXPECT_EQ(error_of([&] { read_documents(dir); }), want);
  EXPECT_EQ(error_of([&] { read_adapter(dir); }), want);
}

// ---- 5. NaN / Inf ------------------------------------------------------------------------------

TEST(ReliabilityIo, NonFiniteFloatWeightsNameTheTensor) {
  const std::string dir = test::scratch_dir();
  ModelFile m = model32();
  m.tensors.at("blk.1.ffn_norm.weight").data[5] = std::nanf("");
  const std::string f32 = save(m, dir + "/nan_f32.gguf", GgmlType::F32);
  EXPECT_EQ(error_of([&] { load_model(f32); }),
            f32 + ": tensor 'blk.1.ffn_norm.weight': element [5] is nan (weights must be finite)");

  // F16: +Inf in token_embd row 2, column 3.
  const std::string f16 = save(model32(), dir + "/inf_f16.gguf", GgmlType::F16);
  const uint16_t inf16 = 0x7c00;
  patch_tensor(f16, "token_embd.weight", (2 * 32 + 3) * 2, &inf16, 2);
  EXPECT_EQ(error_of([&] { load_model(f16); }),
            f16 + ": tensor 'token_embd.weight': element [2, 3] is inf (weights must be finite)");

  // Q8_0 block scale d = NaN in a float tensor (output.weight is not a projection): its 32
  // values dequantize to NaN.
  const std::string q8 = save(model32(), dir + "/nan_d_q8.gguf", GgmlType::Q8_0);
  const uint16_t nan16 = 0x7e00;
  patch_tensor(q8, "output.weight", 34 * 3, &nan16, 2);  // block 3 = row 3, first column
  EXPECT_EQ(error_of([&] { load_model(q8); }),
            q8 + ": tensor 'output.weight': element [3, 0] is nan (weights must be finite)");
}

TEST(ReliabilityIo, NonFiniteBlockScaleOfAnIntegerWeight) {
  const std::string dir = test::scratch_dir();
  ModelFile m = model32();
  QuantSpec spec;
  spec.bits = 4;
  spec.symmetric = true;
  quantize_projections(m, spec);
  const std::string p = save(m, dir + "/q4.gguf", GgmlType::F32);
  {
    GgufFile f(p);
    ASSERT_EQ(f.find_tensor("blk.0.attn_k.weight")->type, GgmlType::Q4_0);
  }
  const uint16_t nan16 = 0x7e00;
  patch_tensor(p, "blk.0.attn_k.weight", 18 * 1, &nan16, 2);  // row 1's block
  const std::string msg = error_of([&] { load_model(p); });
  EXPECT_TRUE(has(msg, p + ": ") && has(msg, "blk.0.attn_k.weight") && has(msg, "nan")) << msg;
}

TEST(ReliabilityIo, NonFiniteScaleTensorOfTheExactLayout) {
  const std::string dir = test::scratch_dir();
  ModelFile m = test::tiny_model(false);  // rows of 16: not a block type, the exact layout (I8 + .scale)
  QuantSpec spec;
  spec.bits = 8;
  spec.symmetric = true;
  quantize_projections(m, spec);
  const std::string p = save(m, dir + "/i8.gguf", GgmlType::F32);
  {
    GgufFile f(p);
    ASSERT_TRUE(f.find_tensor("blk.1.ffn_up.scale"));
  }
  const float inf = std::numeric_limits<float>::infinity();
  patch_tensor(p, "blk.1.ffn_up.scale", 4 * 7, &inf, 4);
  const std::string msg = error_of([&] { load_model(p); });
  EXPECT_TRUE(has(msg, p + ": tensor 'blk.1.ffn_up.scale'") && has(msg, "inf")) << msg;
}

TEST(ReliabilityIo, NonFiniteLlama2cWeight) {
  const std::string src = test::shared_dir() + "/models/stories260K/stories260K.bin";
  QT_REQUIRE_SHARED(src);
  const std::string p = test::scratch_dir() + "/nan.bin";
  std::string b = read_bytes(src);
  const float nan = std::nanf("");
  std::memcpy(b.data() + 28 + 4 * 100, &nan, 4);  // header 7 × int32, then token_embd [512, 64]
  write_file(p, b);
  EXPECT_EQ(error_of([&] { load_model(p); }),
            p + ": tensor 'token_embd.weight': element [1, 36] is nan (weights must be finite)");
}

TEST(ReliabilityIo, NonFiniteAdapterTensorsStateAndAlpha) {
  const std::string dir = test::scratch_dir();
  TensorMap ad;
  ad.emplace("blk.0.attn_q.lora_a", Tensor({4, 32}));
  ad.emplace("blk.0.attn_q.lora_b", Tensor({32, 4}));
  TensorMap state;
  state.emplace("blk.0.attn_q.act_amax", Tensor({1}));
  state.at("blk.0.attn_q.act_amax").data[0] = 1.0f;
  const RunSettings run = {{"method", "lora"}, {"seed", "1"}};

  write_lora_adapter(dir + "/ok.gguf", ad, state, run, 8.0f);
  EXPECT_NO_THROW(read_adapter(dir + "/ok.gguf"));

  TensorMap bad = ad;
  bad.at("blk.0.attn_q.lora_b").data[3 * 4 + 2] = std::nanf("");
  write_lora_adapter(dir + "/lora.gguf", bad, state, run, 8.0f);
  EXPECT_EQ(error_of([&] { read_adapter(dir + "/lora.gguf"); }),
            dir + "/lora.gguf: tensor 'blk.0.attn_q.lora_b': element [3, 2] is nan (weights must be finite)");

  write_qtune_adapter(dir + "/qtune.gguf", bad, state, {{"method", "qalora"}, {"seed", "1"}});
  EXPECT_TRUE(has(error_of([&] { read_adapter(dir + "/qtune.gguf"); }),
                  dir + "/qtune.gguf: tensor 'blk.0.attn_q.lora_b': element [3, 2] is nan"));

  TensorMap bad_state = state;
  bad_state.at("blk.0.attn_q.act_amax").data[0] = -std::numeric_limits<float>::infinity();
  write_lora_adapter(dir + "/state.gguf", ad, bad_state, run, 8.0f);
  EXPECT_EQ(error_of([&] { read_adapter(dir + "/state.gguf"); }),
            dir + "/state.gguf: key 'qtune.state.blk.0.attn_q.act_amax': value [0] is -inf (must be finite)");

  write_lora_adapter(dir + "/alpha.gguf", ad, state, run, std::nanf(""));
  EXPECT_EQ(error_of([&] { read_adapter(dir + "/alpha.gguf"); }),
            dir + "/alpha.gguf: key 'adapter.lora.alpha': nan is not finite");
}

// ---- 6. GGUF semantics ---------------------------------------------------------------------

TEST(ReliabilityIo, OverlappingTensorDataIsRejected) {
  const std::string dir = test::scratch_dir();
  GgufWriter w;
  w.add_raw_tensor("a", {8}, GgmlType::F32, f32_bytes(std::vector<float>(8, 1.0f)));
  w.add_raw_tensor("b", {8}, GgmlType::F32, f32_bytes(std::vector<float>(8, 2.0f)));
  const std::string p = dir + "/overlap.gguf";
  w.write(p);
  EXPECT_NO_THROW(GgufFile{p});
  // b's offset field (the last 8 bytes of its tensor info) → 0, a's offset.
  std::string bytes = read_bytes(p);
  size_t pos = bytes.find(std::string("\x01\0\0\0\0\0\0\0b", 9));
  ASSERT_NE(pos, std::string::npos);
  pos += 9 + 4 + 8 + 4;  // name, n_dims, ne[0], type
  std::memset(bytes.data() + pos, 0, 8);
  write_file(p, bytes);
  EXPECT_EQ(error_of([&] { GgufFile f(p); }),
            p + ": tensor 'b': data at offset 0 overlaps tensor 'a' (offset 0, 32 bytes)");
  // Partial overlap: b at 16, inside a's 32 bytes (an aligned but overlapping offset).
  w = GgufWriter();
  w.set_u32("general.alignment", 16);
  w.add_raw_tensor("a", {8}, GgmlType::F32, f32_bytes(std::vector<float>(8, 1.0f)));
  w.add_raw_tensor("b", {8}, GgmlType::F32, f32_bytes(std::vector<float>(8, 2.0f)));
  w.write(p);
  bytes = read_bytes(p);
  pos = bytes.find(std::string("\x01\0\0\0\0\0\0\0b", 9)) + 9 + 4 + 8 + 4;
  const uint64_t at16 = 16;
  std::memcpy(bytes.data() + pos, &at16, 8);
  write_file(p, bytes);
  EXPECT_EQ(error_of([&] { GgufFile f(p); }),
            p + ": tensor 'b': data at offset 16 overlaps tensor 'a' (offset 0, 32 bytes)");
}

TEST(ReliabilityIo, TensorsTheModelDoesNotHaveAreRejected) {
  const std::string dir = test::scratch_dir();
  const std::string good = save(model32(), dir + "/good.gguf", GgmlType::F32);
  EXPECT_NO_THROW(load_model(good));
  const std::vector<uint8_t> v32 = f32_bytes(std::vector<float>(32, 1.0f));
  // An extra block: blk.2.* in a 2-layer model.
  const std::string extra = rewrite(good, dir + "/blk2.gguf", [&](GgufWriter& w) {
    w.add_raw_tensor("blk.2.attn_norm.weight", {32}, GgmlType::F32, v32);
  });
  EXPECT_EQ(error_of([&] { load_model(extra); }),
            extra + ": tensor 'blk.2.attn_norm.weight': there is no block 2 (llama.block_count is 2)");
  // block_count 1 in a file that holds two blocks.
  const std::string fewer =
      rewrite(good, dir + "/count1.gguf", [&](GgufWriter& w) { w.set_u32("llama.block_count", 1); });
  EXPECT_TRUE(has(error_of([&] { load_model(fewer); }), "there is no block 1 (llama.block_count is 1)"));
  // Any unknown name: a bias, rope_freqs.
  for (const char* name : {"blk.0.attn_q.bias", "rope_freqs.weight"}) {
    const std::string p = rewrite(good, dir + "/unknown.gguf",
                                  [&](GgufWriter& w) { w.add_raw_tensor(name, {32}, GgmlType::F32, v32); });
    EXPECT_EQ(error_of([&] { load_model(p); }),
              fmt::format("{}: tensor '{}' is not a tensor of a llama model (qtune would ignore it)", p, name));
  }
}

TEST(ReliabilityIo, EmptyTokensOnlyAsControlOrUnusedPlaceholders) {
  const std::string dir = test::scratch_dir();
  GgufVocab v = vocab8();
  const std::string ok = save(model32(), dir + "/ok.gguf", GgmlType::F32, &v);
  EXPECT_NO_THROW(load_gguf_tokenizer(ok));

  GgufVocab all_empty = v;
  for (auto& t : all_empty.tokens) t.clear();
  const std::string p = save(model32(), dir + "/empty.gguf", GgmlType::F32, &all_empty);
  EXPECT_EQ(error_of([&] { load_gguf_tokenizer(p); }),
            p + ": key 'tokenizer.ggml.tokens': token 0 is empty (type 1): only a control (3) or unused (5) token "
                "may be empty");

  GgufVocab one = v;
  one.tokens[6].clear();
  one.types[6] = 6;  // byte
  save(model32(), p, GgmlType::F32, &one);
  EXPECT_TRUE(has(error_of([&] { load_gguf_tokenizer(p); }), "token 6 is empty (type 6)"));

  // llama.cpp's placeholders: an empty control or unused token loads and never encodes.
  GgufVocab placeholders = v;
  placeholders.tokens[5].clear();
  placeholders.types[5] = 3;
  placeholders.tokens[6].clear();
  placeholders.types[6] = 5;
  save(model32(), p, GgmlType::F32, &placeholders);
  auto tok = load_gguf_tokenizer(p);
  for (int id : tok->encode("t1t2 x", false, false)) EXPECT_TRUE(id != 5 && id != 6) << id;
}

TEST(ReliabilityIo, SharedLlamaVocabHasNoEmptyNormalToken) {
  const std::string p = test::shared_dir() + "/models/gguf-vocab/ggml-vocab-llama-spm.gguf";
  QT_REQUIRE_SHARED(p);
  EXPECT_NO_THROW(load_gguf_tokenizer(p));
}

// ---- 9. data files ------------------------------------------------------------------------------

TEST(ReliabilityIo, ByteOrderMarkIsDropped) {
  const std::string dir = test::scratch_dir();
  const std::string bom = "\xef\xbb\xbf";
  auto docs = read_documents(write_file(dir + "/a.txt", bom + "In the beginning\nGod\n"));
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].text, "In the beginning");
  docs = read_documents(write_file(dir + "/w.txt", bom + "one\ntwo\n"), /*whole_file=*/true);
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(docs[0].text, "one\ntwo\n");
  // JSONL: the file's mark and a mark at the start of a later line (concatenated files).
  docs = read_documents(write_file(dir + "/b.jsonl", bom + "{\"text\": \"a\"}\n" + bom + "{\"text\": \"b\"}\n"));
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].text, "a");
  EXPECT_EQ(docs[1].text, "b");
  // Only a leading mark is an encoding mark; one inside the text is kept as text.
  docs = read_documents(write_file(dir + "/c.txt", "x" + bom + "y\n"));
  EXPECT_EQ(docs[0].text, "x" + bom + "y");
  EXPECT_TRUE(has(error_of([&] { read_documents(write_file(dir + "/d.txt", bom + "\n")); }), "no documents"));
}

TEST(ReliabilityIo, ExtensionsIgnoreCaseAndJsonIsRefused) {
  const std::string dir = test::scratch_dir();
  const std::string line = "{\"prompt\": \"Q\", \"completion\": \"A\"}\n";
  for (const char* name : {"UP.JSONL", "mixed.JsonL"}) {
    auto docs = read_documents(write_file(dir + "/" + name, line));
    ASSERT_EQ(docs.size(), 1u) << name;
    EXPECT_EQ(docs[0].prompt, "Q") << name;
    EXPECT_EQ(docs[0].text, "A") << name;
  }
  for (const char* name : {"good.json", "GOOD.JSON"}) {
    const std::string p = write_file(dir + "/" + name, line);
    EXPECT_EQ(error_of([&] { read_documents(p); }),
              p + ": .json files are not read: training data is JSON Lines (.jsonl, one object per line) or "
                  "text; rename the file to .jsonl if it is JSON Lines");
  }
  // A dot in a directory name is not an extension.
  ::mkdir((dir + "/d.json").c_str(), 0700);
  auto docs = read_documents(write_file(dir + "/d.json/plain", "text\n"));
  EXPECT_EQ(docs[0].text, "text");
}

// ---- 10. messages quoting file content -------------------------------------------------------

TEST(ReliabilityIo, FileContentInMessagesIsEscapedAndShort) {
  const std::string dir = test::scratch_dir();
  const std::string good = save(model32(), dir + "/good.gguf", GgmlType::F32);
  // NUL inside general.architecture: the message goes on past it.
  const std::string nul = rewrite(good, dir + "/nul.gguf",
                                  [](GgufWriter& w) { w.set_str("general.architecture", std::string("lla\0ma", 6)); });
  EXPECT_EQ(error_of([&] { load_model(nul); }),
            nul + ": key 'general.architecture': 'lla\\x00ma' is not supported (only 'llama')");
  // A 1 MB architecture string makes a short message.
  const std::string big = rewrite(good, dir + "/big.gguf",
                                  [](GgufWriter& w) { w.set_str("general.architecture", std::string(1 << 20, 'x')); });
  std::string msg = error_of([&] { load_model(big); });
  EXPECT_LT(msg.size(), big.size() + 200) << msg.size();
  EXPECT_TRUE(has(msg, "'" + std::string(80, 'x') + "\xe2\x80\xa6' is not supported")) << msg.substr(0, 300);
  // A 1 MB key name with a control byte, as an activation-scale key.
  const std::string key = "qtune.act.scale.\x1b[2J" + std::string(1 << 20, 'k');
  const std::string k = rewrite(good, dir + "/key.gguf", [&](GgufWriter& w) { w.set_f32(key, 1.0f); });
  msg = error_of([&] { load_model(k); });
  EXPECT_LT(msg.size(), k.size() + 300) << msg.size();
  EXPECT_TRUE(has(msg, "key 'qtune.act.scale.\\x1b[2Jkkk")) << msg.substr(0, 300);
  EXPECT_EQ(msg.find('\x1b'), std::string::npos);
  // A JSON error on a 1 MB line.
  const std::string jl = write_file(dir + "/long.jsonl", "{\"text\": \"" + std::string(1 << 20, 'y') + "\n");
  msg = error_of([&] { read_documents(jl); });
  EXPECT_TRUE(has(msg, jl + ":1: invalid JSON")) << msg.substr(0, 300);
  EXPECT_LT(msg.size(), jl.size() + 300) << msg.size();
  // An adapter's general.type.
  const std::string at = rewrite(good, dir + "/type.gguf",
                                 [](GgufWriter& w) { w.set_str("general.type", std::string(5000, 'z') + '\n'); });
  msg = error_of([&] { read_adapter(at); });
  EXPECT_EQ(msg, at + ": not an adapter or qtune checkpoint (general.type is '" + std::string(80, 'z') +
                     "\xe2\x80\xa6')");
}

}  // namespace
}  // namespace qtune
