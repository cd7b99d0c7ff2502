// fuzz/fuzz_safetensors.cpp — Hugging Face checkpoints: the safetensors container (io/safetensors.h)
// and the checkpoint loader (io/hf_model.h). An input starting with '{' is a config.json, parsed
// by parse_hf_config; any other is a model.safetensors: read by SafetensorsFile (every float
// tensor converted) and, next to a fixed config.json of the seeds' tiny model, by open_model
// and materialize (names, dtypes, shapes, the q/k row permutation on read).
#include <sys/stat.h>

#include "fuzz/fuzz_util.h"
#include "fuzz/seed_data.h"
#include "io/hf_model.h"
#include "io/safetensors.h"
#include "tests/hf_checkpoint_util.h"

using namespace qtune;

namespace {

const std::string& checkpoint_dir() {
  static const std::string dir = [] {
    const std::string d = fuzz::scratch_path("hf");
    ::mkdir(d.c_str(), 0700);
    const std::string cfg = test::hf_config(fuzz::tiny_model(8, 16, 8, false).config).dump();
    fuzz::write_file(d + "/config.json", reinterpret_cast<const uint8_t*>(cfg.data()), cfg.size());
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 0 && data[0] == '{') {
    fuzz::expect_error([&] { parse_hf_config(std::string(reinterpret_cast<const char*>(data), size), "config.json"); });
    return 0;
  }
  const std::string path = checkpoint_dir() + "/model.safetensors";
  fuzz::write_file(path, data, size);
  std::unique_ptr<SafetensorsFile> f;
  if (!fuzz::expect_error([&] { f = std::make_unique<SafetensorsFile>(path); })) return 0;
  for (const SafetensorsTensor& t : f->tensors()) {
    QT_FUZZ_CHECK(t.offset + t.nbytes <= f->header().file_size);
    if (t.dtype == SafetensorsDtype::Other) continue;
    QT_FUZZ_CHECK(f->to_float(t.name).numel() == t.numel());
  }
  ModelFile m;
  if (!fuzz::expect_error([&] { m = open_model(checkpoint_dir()); })) return 0;
  if (!fuzz::expect_error([&] { materialize(m); })) return 0;  // a non-finite weight is an Error
  validate_model(m);
  return 0;
}
