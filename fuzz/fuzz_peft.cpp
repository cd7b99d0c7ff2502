// fuzz/fuzz_peft.cpp — Hugging Face PEFT adapter folders (io/peft_adapter.h), as
// `finetune --init-adapter` reads them against a base. An input starting with '{' is the folder's
// adapter_config.json (beside a valid adapter_model.safetensors); any other input is its
// adapter_model.safetensors (beside a valid adapter_config.json). Either the adapter is read —
// then it is a complete adapter of the base (check_peft_lora) — or an Error names the file.
#include <sys/stat.h>

#include "fuzz/fuzz_util.h"
#include "fuzz/seed_data.h"
#include "io/peft_adapter.h"

using namespace qtune;

namespace {

struct Folders {
  LlamaConfig base = fuzz::tiny_model(8, 16, 8, false).config;
  std::string config_dir, tensors_dir;  // a valid safetensors / a valid config kept beside the input
  Folders() {
    const PeftLora a = fuzz::tiny_peft(base);
    config_dir = fuzz::scratch_path("peft_config");
    tensors_dir = fuzz::scratch_path("peft_tensors");
    write_peft_adapter(config_dir, a, base);
    write_peft_adapter(tensors_dir, a, base);
  }
};

const Folders& folders() {
  static const Folders f;
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Folders& f = folders();
  const bool config = size > 0 && data[0] == '{';
  const std::string dir = config ? f.config_dir : f.tensors_dir;
  fuzz::write_file(dir + (config ? "/adapter_config.json" : "/adapter_model.safetensors"), data, size);
  PeftLora a;
  if (!fuzz::expect_error([&] { a = read_peft_adapter(dir, f.base); })) return 0;
  check_peft_lora(a, f.base, dir);  // throws (a finding) if the reader let an incomplete adapter through
  QT_FUZZ_CHECK(!a.adapters.empty());
  return 0;
}
