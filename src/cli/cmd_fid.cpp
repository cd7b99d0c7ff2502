// qtune fid — image quality of a class-conditional DiT on Fashion-MNIST (docs/DESIGN.md §11.1):
// generates --n images of each class of --classes with DDIM + classifier-free guidance
// (models/dit_sampler.h) and scores them with a classifier trained by `qtune classifier-train`:
//   FID            features (the classifier's 128-d penultimate activations) of the generated
//                  images vs those of ALL t10k test images of the same classes (metrics/fid.h);
//   conditional accuracy   the share of generated images of class k the classifier labels k;
//   reference FID  the first --n training images of each class (file order) vs the same test
//                  images: the floor a perfect generator would reach with this many images.
// Each FID is computed over all requested classes together and per class.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/dit_common.h"
#include "cli/flags.h"
#include "core/error.h"
#include "core/progress.h"
#include "io/classifier_file.h"
#include "io/idx.h"
#include "metrics/fid.h"
#include "models/classifier.h"
#include "models/dit_sampler.h"

namespace qtune::cli {

namespace {

struct FidArgs {
  std::string model, classifier;
  std::string data = kFashionMnistDir;
  std::string classes = "0-9";
  int64_t n = 500;
  int steps = 50;
  float cfg = 1.0f;
  float eta = 0.0f;
  uint64_t seed = 0;
  int threads = 0;
  bool quiet = false;
  std::string report;
};

Progress* g_progress = nullptr;  // dit_sample's progress callback is a plain function pointer
void on_progress(int64_t done, int64_t total) {
  if (g_progress) g_progress->update(done, "images");
}

// The rows of `s` with label k, the first `limit` of them (all when limit < 0), in file order.
std::vector<float> images_of(const ImageSet& s, int k, int64_t limit) {
  const int64_t n = int64_t(s.rows) * s.cols;
  std::vector<float> out;
  for (int64_t i = 0; i < s.size() && (limit < 0 || int64_t(out.size()) < limit * n); ++i)
    if (s.labels[i] == k) out.insert(out.end(), s.pixels.begin() + i * n, s.pixels.begin() + (i + 1) * n);
  return out;
}

}  // namespace

int cmd_fid(int argc, char** argv) {
  CLI::App app{"Image quality of a class-conditional DiT on Fashion-MNIST: FID against the t10k test images and "
               "conditional accuracy, with the features and labels of a `qtune classifier-train` classifier.",
               "qtune fid"};
  FidArgs a;
  app.add_option("--model,-m", a.model, "the DiT GGUF (28×28×1, 10 classes)")->required();
  app.add_option("--classifier", a.classifier, "the classifier GGUF from `qtune classifier-train`")->required();
  app.add_option("--data", a.data, "directory of the Fashion-MNIST IDX files")->capture_default_str();
  app.add_option("--classes", a.classes, "the classes generated and scored, e.g. 0-9 or 8,9")->capture_default_str();
  app.add_option("--n", a.n, "images generated per class (also the training images per class of the reference FID)")
      ->capture_default_str();
  app.add_option("--steps", a.steps, "DDIM steps")->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--cfg", a.cfg, "classifier-free guidance weight w (1 = none)")->capture_default_str()->check(kNonNegative);
  app.add_option("--eta", a.eta, "DDIM eta (0 = deterministic)")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  app.add_option("--seed", a.seed, "sampling seed")->capture_default_str();
  add_threads_flag(app, a.threads);
  app.add_flag("--quiet,-q", a.quiet, "no progress bar");
  add_report_flag(app, a.report);
  QT_PARSE(app, argc, argv);

  QT_CHECK(a.n >= 2 && a.n <= 6000, "--n {}: must be in 2..6000 (a covariance needs 2 images per class; the reference "
           "FID takes as many training images, and Fashion-MNIST has 6000 per class)", a.n);
  const std::vector<int> classes = parse_class_list(a.classes, 10);
  std::vector<NamedPath> out;
  if (!a.report.empty()) out.push_back({"--report", a.report});
  check_paths({{"--model", a.model}, {"--classifier", a.classifier}}, out);
  check_dataset_dir(a.data);
  use_threads(a.threads);

  const ClassifierFile cf = load_classifier(a.classifier);
  QT_CHECK(cf.config.image == 28 && cf.config.num_classes == 10,
           "{}: the classifier takes {}×{} images into {} classes, Fashion-MNIST has 28×28 and 10", a.classifier,
           cf.config.image, cf.config.image, cf.config.num_classes);
  MlpClassifier<float> clf(cf);
  InferenceDit dit = load_inference_dit(a.model);
  QT_CHECK(dit.config.image == 28 && dit.config.channels == 1, "{}: the DiT takes {}×{}×{} images, Fashion-MNIST's are 28×28×1",
           a.model, dit.config.channels, dit.config.image, dit.config.image);
  QT_CHECK(dit.config.num_classes == 10, "{}: the DiT has {} classes, Fashion-MNIST 10", a.model,
           dit.config.num_classes);

  const ImageSet test_set = load_fashion_mnist(a.data, "t10k", classes);
  const ImageSet train_set = load_fashion_mnist(a.data, "train", classes);
  const int64_t numel = 28 * 28;
  const int D = cf.config.hidden2, C = int(classes.size());

  // Generation: class-major, n images of classes[0], then of classes[1], ...
  std::vector<int> wanted;
  for (int k : classes) wanted.insert(wanted.end(), size_t(a.n), k);
  DitSampleOptions so;
  so.steps = a.steps, so.eta = a.eta, so.guidance = a.cfg, so.seed = a.seed;
  Progress bar(int64_t(wanted.size()), "sample", !a.quiet);
  g_progress = &bar;
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<float> gen = dit_sample(*dit.model, wanted, so, on_progress);
  const double sample_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  bar.finish();
  g_progress = nullptr;

  // Features and labels of the three image sets, by class.
  std::vector<float> gen_f(wanted.size() * D), all_test_f, all_ref_f;
  std::vector<int> gen_pred(wanted.size());
  classifier_features(clf, gen.data(), int64_t(wanted.size()), gen_f.data(), gen_pred.data());
  nlohmann::json per_class = nlohmann::json::array();
  double acc_sum = 0;
  int64_t test_right = 0, test_total = 0;
  for (int c = 0; c < C; ++c) {
    const int k = classes[c];
    const std::vector<float> test_px = images_of(test_set, k, -1), ref_px = images_of(train_set, k, a.n);
    const int64_t nt = int64_t(test_px.size()) / numel, nr = int64_t(ref_px.size()) / numel;
    QT_CHECK(nt >= 2, "{}: only {} t10k images of class {}", a.data, nt, k);
    QT_CHECK(nr == a.n, "--n {}: the training set in {} has only {} images of class {} for the reference FID", a.n,
             a.data, nr, k);
    std::vector<float> test_f(size_t(nt) * D), ref_f(size_t(nr) * D);
    std::vector<int> test_pred(nt);
    classifier_features(clf, test_px.data(), nt, test_f.data(), test_pred.data());
    classifier_features(clf, ref_px.data(), nr, ref_f.data(), nullptr);
    int64_t hits = 0, test_hits = 0;
    for (int64_t i = 0; i < a.n; ++i) hits += gen_pred[c * a.n + i] == k;
    for (int64_t i = 0; i < nt; ++i) test_hits += test_pred[i] == k;
    test_right += test_hits, test_total += nt;
    const double cond_acc = double(hits) / double(a.n);
    acc_sum += cond_acc;
    const FeatureStats sg = feature_stats(gen_f.data() + c * a.n * D, a.n, D), st = feature_stats(test_f.data(), nt, D),
                       sr = feature_stats(ref_f.data(), nr, D);
    per_class.push_back({{"class", k},
                         {"name", fashion_mnist_class_names()[k]},
                         {"generated", a.n},
                         {"test_images", nt},
                         {"conditional_accuracy", cond_acc},
                         {"classifier_test_accuracy", double(test_hits) / double(nt)},
                         {"fid", frechet_distance(sg, st)},
                         {"fid_train_reference", frechet_distance(sr, st)}});
    all_test_f.insert(all_test_f.end(), test_f.begin(), test_f.end());
    all_ref_f.insert(all_ref_f.end(), ref_f.begin(), ref_f.end());
  }
  const int64_t n_test = int64_t(all_test_f.size()) / D;
  const FeatureStats st = feature_stats(all_test_f.data(), n_test, D);
  const double fid = frechet_distance(feature_stats(gen_f.data(), int64_t(wanted.size()), D), st);
  const double fid_ref = frechet_distance(feature_stats(all_ref_f.data(), int64_t(all_ref_f.size()) / D, D), st);
  const double mean_acc = acc_sum / C;

  write_report(a.report,
               {{"command", "fid"},
                {"model", a.model},
                {"model_weights", dit.describe},
                {"classifier", a.classifier},
                {"classifier_recorded_test_accuracy", cf.test_accuracy ? nlohmann::json(*cf.test_accuracy) : nlohmann::json()},
                {"classifier_test_accuracy", double(test_right) / double(test_total)},
                {"data", a.data},
                {"classes", classes},
                {"n", a.n},
                {"steps", a.steps},
                {"cfg", a.cfg},
                {"eta", a.eta},
                {"seed", a.seed},
                {"threads", a.threads},
                {"features", fmt::format("the classifier's {}-d penultimate activations (GELU of its second hidden layer)", D)},
                {"generated_images", int64_t(wanted.size())},
                {"test_images", n_test},
                {"fid", fid},
                {"fid_train_reference", fid_ref},
                {"fid_which",
                 "generated images of all --classes vs all t10k images of those classes; reference: the first n "
                 "training images of each class (file order) vs the same test images"},
                {"conditional_accuracy", mean_acc},
                {"per_class", per_class},
                {"sample_seconds", sample_seconds}});
  std::printf("FID %.3f (train reference %.3f) vs %lld t10k images  conditional accuracy %.1f%%  classes %s × %lld, "
              "%d steps, cfg %g, eta %g, seed %llu, sampled in %.1f s\n",
              fid, fid_ref, static_cast<long long>(n_test), 100.0 * mean_acc, a.classes.c_str(),
              static_cast<long long>(a.n), a.steps, a.cfg, a.eta, static_cast<unsigned long long>(a.seed),
              sample_seconds);
  return 0;
}

}  // namespace qtune::cli
