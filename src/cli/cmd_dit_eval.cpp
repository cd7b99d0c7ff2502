// qtune dit-eval — the held-out ε-prediction loss of a DiT GGUF (float, or deployed with
// integer weights and int8 activations): the same images, (t, ε) and arithmetic as dit-train's
// final evaluation, so a merged model can be checked against the run that trained it.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/dit_batches.h"
#include "cli/dit_common.h"
#include "cli/flags.h"
#include "core/error.h"

namespace qtune::cli {

int cmd_dit_eval(int argc, char** argv) {
  CLI::App app{"The held-out loss (ε-prediction MSE) of a DiT GGUF on Fashion-MNIST test images, as dit-train "
               "reports it.",
               "qtune dit-eval"};
  std::string model, data = kFashionMnistDir, classes = "0-9", report;
  int val_images = 256, batch = 16, threads = 0;
  app.add_option("--model,-m", model, "the DiT GGUF (dit-train's, or a merged one)")->required();
  app.add_option("--data", data, "directory of the Fashion-MNIST IDX files")->capture_default_str();
  app.add_option("--classes", classes, "the classes scored, e.g. 8-9 (as dit-train's --classes)")->capture_default_str();
  app.add_option("--val-images", val_images, "held-out images: the first N test (t10k) images of --classes, in "
                                             "file order")
      ->capture_default_str()->check(kPositive);
  app.add_option("--batch,-b", batch, "images per forward pass")->capture_default_str()->check(CLI::Range(1, 1 << 16));
  app.add_option("--threads", threads, "worker threads (0 = all cores)")->capture_default_str()->check(CLI::Range(0, 1024));
  add_report_flag(app, report);
  QT_PARSE(app, argc, argv);
  std::vector<NamedPath> outs;
  if (!report.empty()) outs.push_back({"--report", report});
  check_paths({{"--model", model}}, outs);
  use_threads(threads);

  const std::vector<int> class_ids = parse_class_list(classes, 10);
  check_dataset_dir(data);
  const ImageSet held = first_images(load_fashion_mnist(data, "t10k", class_ids), val_images);
  QT_CHECK(held.size() > 0, "--classes {}: no images in {}", classes, data);
  InferenceDit d = load_inference_dit(model);
  QT_CHECK(d.config.image == held.rows && d.config.image == held.cols && d.config.channels == 1 &&
               d.config.num_classes == 10,
           "{}: the DiT takes {}×{}×{} images of {} classes, Fashion-MNIST's are 28×28×1 of 10", model,
           d.config.channels, d.config.image, d.config.image, d.config.num_classes);
  DitTrainModel m(*d.model, held, held, 0.0f);
  HeldOut val(held.size());
  const EvalResult r = evaluate(m, val, batch, 1, 0);
  write_report(report, {{"command", "dit-eval"},
                        {"model", model},
                        {"weights", d.describe},
                        {"classes", class_ids},
                        {"heldout", heldout_json(held, classes)},
                        {"val_loss", r.loss}});
  std::printf("held-out loss %.6f (%lld images of classes %s)  %s: %s\n", r.loss, static_cast<long long>(held.size()),
              classes.c_str(), model.c_str(), d.describe.c_str());
  return 0;
}

}  // namespace qtune::cli
