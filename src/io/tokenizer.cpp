// io/tokenizer.cpp — picks the tokenizer implementation by file content.
#include "io/tokenizer.h"

#include "core/error.h"
#include "core/file.h"
#include "io/gguf_tokenizer.h"
#include "io/tokenizer_llama2c.h"
#include "io/tokenizer_spm.h"

namespace qtune {

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  const std::string head = read_file_head(path, 4);  // only regular files (core/file.h)
  const size_t n = head.size();
  QT_CHECK(n > 0, "{}: tokenizer file is empty", path);
  if (head == "GGUF") return load_gguf_tokenizer(path);
  // A SentencePiece ModelProto starts with field 1 (pieces, length-delimited): tag 0x0a then a
  // non-zero varint length. A tokenizer.bin starts with int32 max_token_length, which could be
  // 10 (0x0a) but is then followed by three zero bytes.
  const bool spm_ext = path.size() >= 6 && path.compare(path.size() - 6, 6, ".model") == 0;
  if (spm_ext || (n >= 2 && head[0] == 0x0a && head[1] != 0)) return std::make_unique<SpmTokenizer>(path);
  return std::make_unique<Llama2cTokenizer>(path);
}

}  // namespace qtune
