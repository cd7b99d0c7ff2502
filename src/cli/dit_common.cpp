// cli/dit_common.cpp — see dit_common.h.
#include "cli/dit_common.h"

#include <filesystem>

#include "core/error.h"

namespace qtune::cli {

// A missing dataset is the common first-run problem: say how to get it, in one line.
void check_dataset_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  for (const char* split : {"train", "t10k"})
    for (const char* kind : {"images-idx3", "labels-idx1"}) {
      const std::string base = fmt::format("{}/{}-{}-ubyte", dir, split, kind);
      QT_CHECK(fs::exists(base + ".gz") || fs::exists(base),
               "Fashion-MNIST not found: {}(.gz) is missing; install it with `apt-get install "
               "dataset-fashion-mnist` or give --data DIR with the IDX files",
               base);
    }
}

InferenceDit load_inference_dit(const std::string& path) {
  DitFile f = load_dit(path);
  InferenceDit d;
  d.config = f.config;
  d.method.frozen = true;  // no trainable params, no gradient buffers
  d.method.act_bits = f.act.bits;
  const size_t slots = dit_slot_stems(f.config).size();
  d.describe = f.quantized.empty() ? "float weights"
                                   : fmt::format("integer weights ({} of {} slots)", f.quantized.size(), slots);
  if (f.act.bits == 8)
    d.describe += f.act.scales.empty() ? ", int8 activations (per-token scales)" : ", int8 activations (static scales)";
  if (!f.act.tables.empty())
    d.describe += fmt::format(", per-step activation quantizers ({})", describe_step_tables(f.act.tables));
  d.model = std::make_unique<Dit<float>>(f, d.method, 0);
  return d;
}

}  // namespace qtune::cli
