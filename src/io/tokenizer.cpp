// io/tokenizer.cpp — picks the tokenizer implementation by file content.
#include "io/tokenizer.h"

#include <fstream>

#include "core/error.h"
#include "core/file.h"
#include "io/gguf_tokenizer.h"
#include "io/tokenizer_llama2c.h"
#include "io/tokenizer_spm.h"

namespace qtune {

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  QT_CHECK(file_exists(path), "{}: no such file", path);
  std::ifstream in(path, std::ios::binary);
  QT_CHECK(in.good(), "{}: cannot open", path);
  char head[4] = {};
  in.read(head, sizeof head);
  const size_t n = size_t(in.gcount());
  QT_CHECK(n > 0, "{}: tokenizer file is empty", path);
  if (n == 4 && std::string(head, 4) == "GGUF") return load_gguf_tokenizer(path);
  // A SentencePiece ModelProto starts with field 1 (pieces, length-delimited): tag 0x0a then a
  // non-zero varint length. A tokenizer.bin starts with int32 max_token_length, which could be
  // 10 (0x0a) but is then followed by three zero bytes.
  const bool spm_ext = path.size() >= 6 && path.compare(path.size() - 6, 6, ".model") == 0;
  if (spm_ext || (n >= 2 && head[0] == 0x0a && head[1] != 0)) return std::make_unique<SpmTokenizer>(path);
  return std::make_unique<Llama2cTokenizer>(path);
}

}  // namespace qtune
