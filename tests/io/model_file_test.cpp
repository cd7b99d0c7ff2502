// tests/io/model_file_test.cpp — load_model format sniffing and validate_model.
#include <fstream>
#include <vector>

#include "core/error.h"
#include "io/gguf_model.h"
#include "io/model_file.h"
#include "test_util.h"

namespace qtune {
namespace {

std::string s260k(const char* f) { return test::shared_dir() + "/models/stories260K/" + f; }

void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

// Expects an Error whose message names `path`.
template <class F>
void expect_error_naming(F&& f, const std::string& path) {
  try {
    f();
    ADD_FAILURE() << "no error for " << path;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(ModelFile, SniffsBothLlama2cVersions) {
  QT_REQUIRE_SHARED(s260k("stories260K_v1.bin"));
  EXPECT_EQ(load_model(s260k("stories260K.bin")).format, "llama2c-v0");
  EXPECT_EQ(load_model(s260k("stories260K_v1.bin")).format, "llama2c-v1");
}

TEST(ModelFile, SniffsGgufAndMatchesLlama2c) {
  QT_REQUIRE_SHARED(s260k("stories260K.bin"));
  ModelFile a = load_model(s260k("stories260K.bin"));
  std::string p = test::scratch_dir() + "/m.gguf";
  save_model_gguf(a, p, GgufSaveOptions{});  // F32: lossless
  ModelFile b = load_model(p);
  EXPECT_EQ(b.format, "gguf");
  EXPECT_EQ(b.config.n_kv_heads, 4);
  ASSERT_EQ(b.tensors.size(), a.tensors.size());
  for (const auto& [name, t] : a.tensors) {
    ASSERT_TRUE(b.tensors.count(name)) << name;
    EXPECT_EQ(test::rel_err(b.tensors.at(name).ptr(), t.ptr(), size_t(t.numel())), 0.0) << name;
  }
}

TEST(ModelFile, TruncatedGgufIsAnError) {
  std::string p = test::scratch_dir() + "/t.gguf";
  write_bytes(p, {'G', 'G', 'U', 'F', 3, 0});
  expect_error_naming([&] { load_model(p); }, p);
}

TEST(ModelFile, MissingEmptyAndBinaryFiles) {
  std::string dir = test::scratch_dir();
  expect_error_naming([&] { load_model(dir + "/nope.bin"); }, dir + "/nope.bin");
  write_bytes(dir + "/empty.bin", {});
  expect_error_naming([&] { load_model(dir + "/empty.bin"); }, dir + "/empty.bin");
  std::vector<uint8_t> junk(5000);
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = uint8_t(i * 131 + 7);
  write_bytes(dir + "/junk.bin", junk);
  expect_error_naming([&] { load_model(dir + "/junk.bin"); }, dir + "/junk.bin");
  write_bytes(dir + "/text.bin", std::vector<uint8_t>{'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '\n',
                                                      'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l',
                                                      'm', 'n', 'o', 'p'});
  expect_error_naming([&] { load_model(dir + "/text.bin"); }, dir + "/text.bin");
  expect_error_naming([&] { load_model(dir); }, dir);  // a directory
}

TEST(ModelFile, ValidateNamesTheTensor) {
  QT_REQUIRE_SHARED(s260k("stories260K.bin"));
  ModelFile m = load_model(s260k("stories260K.bin"));
  validate_model(m);
  ModelFile missing = m;
  missing.tensors.erase("blk.3.ffn_up.weight");
  try {
    validate_model(missing);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blk.3.ffn_up.weight"), std::string::npos) << e.what();
  }
  ModelFile wrong = m;
  wrong.tensors.at("blk.2.attn_v.weight") = Tensor({64, 64});
  try {
    validate_model(wrong);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blk.2.attn_v.weight"), std::string::npos) << e.what();
  }
  ModelFile untied = m;
  untied.config.tied_classifier = false;
  EXPECT_THROW(validate_model(untied), Error);  // output.weight now required
}

}  // namespace
}  // namespace qtune
